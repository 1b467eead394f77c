#!/usr/bin/env bash
# Benchmark on the lent GPU machine (not a test; see ../shared/gpu/README.md for the machine).
# Runs THERE, from the repository root of the copy the device tool makes, after
# ../shared/gpu/prepare-ort-gpu.sh's parts are unpacked into /opt/ortgpu. Carry:
#   target/release/ghostline-serve   (built here; that machine has no cargo)
#   .gpu/tokenizer.json              (the default model's, copied here: cp ~/.cache/ghostline/models/
#                                     qwen2.5-coder-0.5b-instruct-q4km-cpu/tokenizer.json .gpu/)
#   .gpu/pylib                       (ggml's gguf reader, which that machine lacks:
#                                     pip install --no-deps --target .gpu/pylib gguf==0.19.0)
# The real weights are not carried: the model is Qwen2.5-Coder-0.5B's shape with random GGUF blocks
# (make_tiny_model.py --shape 0.5b), written for CUDA in float16 by gguf_onnx.py there, so
# ghostline-serve and onnxruntime-genai run the same ONNX; timing does not depend on the
# weights' values (generation lengths are forced with ignore_eos / min_length), except for
# prompt-lookup drafting, which is off here (see below).
#
#   GPU_BENCH_QUICK=1  256-token prompts only, one repeat (a first look within a short lease)
# Results (tables and JSON) go to $OUT (the device tool brings it back) or /tmp/gpu-bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${OUT:-/tmp/gpu-bench}"; mkdir -p "$out"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-/opt/ortgpu/onnxruntime/capi/libonnxruntime.so.1.31.1}"
export PYTHONPATH="${PYTHONPATH:-/opt/ortgpu}:$(pwd)/.gpu/pylib"
export GHOSTLINE_CACHE="${GHOSTLINE_CACHE:-/tmp/ghostline-cache}"
shape="${GPU_BENCH_SHAPE:-0.5b}"          # tiny: for a dry run of this script
model="${GPU_BENCH_MODEL:-/tmp/random-qwen2-$shape-cuda-fp16}"
device="${GPU_BENCH_DEVICE:-cuda}"        # cpu: a dry run of this script on a machine without a GPU
backends="${GPU_BENCH_BACKENDS-genai}"   # onnxruntime-genai (CUDA) on the same ONNX; "" for none
lengths=256,1024,2048 repeats=3 streams=1,8,32
[ "${GPU_BENCH_QUICK:-0}" = 1 ] && lengths=256 repeats=1 streams=1,8
PY="${PYTHON:-python3}"
log() { printf '[gpu-bench] %s\n' "$*" | tee -a "$out/summary.md" >&2; }

[ -f "$ORT_DYLIB_PATH" ] || { log "no ONNX Runtime at $ORT_DYLIB_PATH (unpack prepare-ort-gpu.sh's parts first)"; exit 1; }
[ -x target/release/ghostline-serve ] || { log "carry target/release/ghostline-serve"; exit 1; }
[ -f .gpu/tokenizer.json ] || { log "carry .gpu/tokenizer.json (the default model's tokenizer)"; exit 1; }
{ nvidia-smi -L || true; } > "$out/device.txt" 2>&1
"$PY" inference-backend/scripts/make_tiny_model.py --shape "$shape" --layout genai-cuda-fp16 --out "$model" \
  --tokenizer .gpu/tokenizer.json 2>&1 | tail -n 3

servers=()
trap 'kill "${servers[@]}" 2>/dev/null || true' EXIT
start_server() {  # $1: name, rest: extra flags; sets $url; fails (after logging why) if it cannot start
  local name=$1; shift
  target/release/ghostline-serve --port 0 --device "$device" --model "$model" --request-timeout 900 \
    --max-tokens-cap 4096 --queue-size 64 --max-active 32 "$@" 2>"$out/$name.log" &
  servers+=($!)
  for _ in $(seq 600); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$out/$name.log" | sed 's/listening on //' || true)
    [ -n "$url" ] && curl -sf "$url/ready" >/dev/null && { log "$name at $url: $(grep -o 'ready: .*' "$out/$name.log")"; return 0; }
    kill -0 "${servers[-1]}" 2>/dev/null || { log "$name did not start:"; tail -n 20 "$out/$name.log" | tee -a "$out/summary.md" >&2; return 1; }
    sleep 0.5
  done
  log "$name did not become ready"; return 1
}
reference() {  # $1: JSON name, rest: bench_reference.py arguments
  local json=$1; shift
  "$PY" inference-backend/scripts/bench_reference.py --model-dir "$model" --lengths "$lengths" --gen 128 \
    --repeats "$repeats" --json-out "$out/$json" "$@" 2>&1 | tee -a "$out/summary.md"
}

# Prompt lookup off: a random-weight model soon repeats itself, so drafts would be confirmed far
# more often than with real weights and flatter the decode rate.
start_server serve --prompt-lookup off
plain=$url
reference reference.json --backends "$backends" --server "server=$plain"

if [ "$device" = cuda ]; then
  # CUDA graphs need the fixed-shape batch: --max-active slots of --context-length positions.
  # A separate run, so that a failure there (never run on a GPU so far) keeps the figures above.
  if start_server serve-graph --cuda-graph --max-active 8 --context-length 4096; then
    reference reference-cudagraph.json --backends "" --server "server-cudagraph=$url" \
      || log "the --cuda-graph run failed: see $out/serve-graph.log"
    kill "${servers[-1]}" 2>/dev/null || true
  fi
fi

"$PY" inference-backend/scripts/bench_serving.py --model-dir "$model" --backends "$backends" --server "$plain" \
  --streams "$streams" --gen 128 2>&1 | tee -a "$out/summary.md"
curl -s "$plain/metrics" > "$out/metrics.txt"
log "done: $out/summary.md"
