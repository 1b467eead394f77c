#!/usr/bin/env bash
# Create (or reuse) the scripts' venv at ${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}/venv and install
# the pinned requirements. A second run only checks them (pip says "already satisfied", seconds).
#   bash inference-backend/scripts/setup_python.sh          # requirements.txt
#   bash inference-backend/scripts/setup_python.sh --bench  # + requirements-bench.txt (llama-cpp-python)
# Prints the venv's python path as its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}"
venv="$cache/venv"
py="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$cache"
  "$py" -m venv "$venv"
fi
stamp="$venv/.ghostline-requirements"
want="$(cat "$here/requirements.txt")"
if [ "${1:-}" = "--bench" ]; then want="$want"$'\n'"$(cat "$here/requirements-bench.txt")"; fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "venv up to date: $venv" >&2
else
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$here/requirements.txt"
  if [ "${1:-}" = "--bench" ]; then
    # CPU-only llama.cpp build, no network fetches at build time.
    CMAKE_ARGS="${CMAKE_ARGS:--DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF}" \
    CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
      "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        --find-links "$cache/dl/wheels" -r "$here/requirements-bench.txt"
  fi
  printf '%s' "$want" > "$stamp"
fi
echo "$venv/bin/python"
