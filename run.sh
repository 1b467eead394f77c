#!/usr/bin/env bash
# Ghostline in one command: installs what is missing (Python tools in a private venv, ONNX
# Runtime), fetches and converts the default model (once; later runs reuse it), builds, and starts
# ghostline-serve on 127.0.0.1:8123. Extra arguments go to ghostline-serve (see --help).
# GHOSTLINE_REPLICAS=N starts N replicas behind vllm-router there instead (deploy/README.md).
# GHOSTLINE_PREPARE_ONLY=1 stops after preparing (test.sh uses that).
set -euo pipefail
cd "$(dirname "$0")"
export GHOSTLINE_CACHE="${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}"
say() { printf '\033[1m[ghostline]\033[0m %s\n' "$*" >&2; }

command -v cargo >/dev/null || { say "cargo is required (https://rustup.rs)"; exit 1; }
command -v python3 >/dev/null || { say "installing python3"; apt-get update -qq && apt-get install -y -qq python3 python3-venv; }

say "Python tools (venv at $GHOSTLINE_CACHE/venv)"
bash inference-backend/scripts/setup_python.sh
PY="$GHOSTLINE_CACHE/venv/bin/python"

# The model ladder (fetch_default_model.py): `--model qwen2.5-coder-1.5b` (or GHOSTLINE_MODEL=…)
# picks one by name; `--model DIR` still serves a directory of your own. Default: the CPU one
# below on a CPU, the 1.5B on a GPU (README.md, "Which model").
CPU_DEFAULT_MODEL=qwen2.5-coder-0.5b
GPU_DEFAULT_MODEL=qwen2.5-coder-1.5b
is_ladder() { case "$1" in qwen2.5-coder-0.5b|qwen2.5-coder-1.5b) return 0 ;; *) return 1 ;; esac; }
ladder="${GHOSTLINE_MODEL:-}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) if [ $# -ge 2 ] && is_ladder "$2"; then ladder="$2"; shift 2; continue; fi ;;
    --model=*) if is_ladder "${1#--model=}"; then ladder="${1#--model=}"; shift; continue; fi ;;
  esac
  args+=("$1"); shift
done
set -- ${args[@]+"${args[@]}"}
own_model=0
case " $* " in *" --model"*) own_model=1 ;; esac
if [ -n "$ladder" ] && ! is_ladder "$ladder"; then
  if [ -d "$ladder" ] && [ "$own_model" = 0 ]; then set -- --model "$ladder" "$@"; own_model=1; ladder=""
  else say "GHOSTLINE_MODEL=$ladder is neither qwen2.5-coder-0.5b, qwen2.5-coder-1.5b nor a model directory"; exit 2; fi
fi

gpu=0
if [ "${GHOSTLINE_DEVICE:-auto}" != cpu ] && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi

# The CPU model is always prepared: the tests and the CPU fallback use it.
say "model ${ladder:-$CPU_DEFAULT_MODEL} for the CPU (Q4_K_M GGUF, verified by sha256, its blocks kept exactly)"
cpu_dir="$("$PY" inference-backend/scripts/fetch_default_model.py --model "${ladder:-$CPU_DEFAULT_MODEL}" --print-dir)"
model_dir="$cpu_dir"

# On a machine with an NVIDIA GPU (and no ORT_DYLIB_PATH chosen by hand): ONNX Runtime's CUDA 13
# build and the float16 CUDA variant, so that --device auto finds the CUDA provider. Not yet run
# on a GPU by our CI (it has none); GHOSTLINE_DEVICE=cpu skips it.
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ "$gpu" = 1 ] && [ "${GHOSTLINE_PREPARE_ONLY:-0}" != 1 ]; then
  say "NVIDIA GPU found: ONNX Runtime GPU (onnxruntime-gpu 1.31.1, CUDA 13) and the float16 CUDA model"
  ls "$GHOSTLINE_CACHE"/ort-gpu/onnxruntime/capi/libonnxruntime.so.* >/dev/null 2>&1 \
    || "$PY" -m pip install -q --no-deps --target "$GHOSTLINE_CACHE/ort-gpu" onnxruntime-gpu==1.31.1
  ORT_DYLIB_PATH="$(ls "$GHOSTLINE_CACHE"/ort-gpu/onnxruntime/capi/libonnxruntime.so.* | sort | tail -n 1)"
  model_dir="$("$PY" inference-backend/scripts/fetch_default_model.py --model "${ladder:-$GPU_DEFAULT_MODEL}" --variant cuda-fp16 --print-dir)"
fi
[ "$own_model" = 1 ] || set -- --model "$model_dir" "$@"
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$GHOSTLINE_CACHE"/venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* | sort | tail -n 1)}"
export ORT_DYLIB_PATH

[ "${GHOSTLINE_PREPARE_ONLY:-0}" = 1 ] && exit 0

say "building (release)"
cargo build --release -q -p ghostline-serve -p ghostline-lsp
say "editors: point them at $(pwd)/target/release/ghostline-lsp (README.md, 'Editors'); it talks to http://127.0.0.1:8123"
if [ "${GHOSTLINE_REPLICAS:-1}" -gt 1 ]; then
  # Scale-out on one machine: N replicas behind vllm-router on the same address (deploy/README.md).
  say "starting $GHOSTLINE_REPLICAS ghostline-serve replicas behind vllm-router: $*"
  exec python3 inference-backend/scripts/replicas.py --replicas "$GHOSTLINE_REPLICAS" -- "$@"
fi
say "starting ghostline-serve $*"
exec target/release/ghostline-serve "$@"
