#!/usr/bin/env bash
# Benchmark (not a test): ghostline-serve timed through its HTTP API, side by side with
# onnxruntime-genai's Python API on the same ONNX model and llama.cpp (llama-cpp-python) on the
# same GGUF; then the serving figures (follow-up keystroke, concurrent streams).
#   inference-backend/scripts/bench.sh [--lengths 256,1024,2048] [--gen 64] [--repeats N]
# First run installs llama-cpp-python (compiles llama.cpp: ~25 min on two cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
export GHOSTLINE_CACHE="${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}"
GHOSTLINE_PREPARE_ONLY=1 ./run.sh
bash inference-backend/scripts/setup_python.sh --bench
PY="$GHOSTLINE_CACHE/venv/bin/python"
cargo build --release -q -p ghostline-serve
threads="${GHOSTLINE_BENCH_THREADS:-$(nproc)}"
# Two servers of the same build: as users run it, and plain (prompt-lookup drafting and the
# prefill graph off: one int8 graph, one token per decode step), so the table shows what those
# two add (drafting: decode; the prefill graph: time to first token) and what the engine does
# without them.
start_server() {  # $1: log file, rest: extra flags; sets $url
  local log=$1; shift
  target/release/ghostline-serve --port 0 --threads "$threads" --request-timeout 900 --max-tokens-cap 4096 \
    --queue-size 64 "$@" 2>"$log" &
  servers+=($!)
  for _ in $(seq 600); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$log" | sed 's/listening on //' || true)
    [ -n "$url" ] && curl -sf "$url/ready" >/dev/null && return 0
    kill -0 "${servers[-1]}" || { cat "$log"; exit 1; }
    sleep 0.5
  done
  echo "server did not become ready"; cat "$log"; exit 1
}
servers=()
logs=$(mktemp -d)
trap 'kill "${servers[@]}" 2>/dev/null; rm -rf "$logs"' EXIT
start_server "$logs/on.log"; url_on=$url
start_server "$logs/plain.log" --prompt-lookup off --prefill-graph off; url_plain=$url
echo "ghostline-serve at $url_on (and $url_plain with --prompt-lookup off --prefill-graph off) with $threads threads"
"$PY" inference-backend/scripts/bench_reference.py --threads "$threads" --server "server=$url_on" \
  --server "server-plain=$url_plain" "$@"
kill "${servers[1]}"
"$PY" inference-backend/scripts/bench_serving.py --threads "$threads" --server "$url_on"
