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
log=$(mktemp)
target/release/ghostline-serve --port 0 --threads "$threads" --request-timeout 900 --max-tokens-cap 4096 \
  --queue-size 64 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 600); do
  url=$(grep -o 'listening on http://[0-9.:]*' "$log" | sed 's/listening on //' || true)
  [ -n "$url" ] && curl -sf "$url/ready" >/dev/null && break
  kill -0 $server || { cat "$log"; exit 1; }
  sleep 0.5
done
echo "ghostline-serve at $url with $threads threads"
"$PY" inference-backend/scripts/bench_reference.py --threads "$threads" --server "$url" "$@"
"$PY" inference-backend/scripts/bench_serving.py --threads "$threads" --server "$url"
