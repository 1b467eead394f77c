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

say "default model (Qwen2.5-Coder-0.5B-Instruct, int4, verified by sha256)"
"$PY" inference-backend/scripts/fetch_default_model.py

# On a machine with an NVIDIA GPU (and no ORT_DYLIB_PATH chosen by hand): ONNX Runtime's CUDA 13
# build and the CUDA fp16 model, so that --device auto finds the CUDA provider. Not yet run on a
# GPU by our CI (it has none); GHOSTLINE_DEVICE=cpu skips it.
if [ -z "${ORT_DYLIB_PATH:-}" ] && [ "${GHOSTLINE_DEVICE:-auto}" != cpu ] && [ "${GHOSTLINE_PREPARE_ONLY:-0}" != 1 ] \
   && command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
  say "NVIDIA GPU found: ONNX Runtime GPU (onnxruntime-gpu 1.31.1, CUDA 13) and the CUDA fp16 model"
  ls "$GHOSTLINE_CACHE"/ort-gpu/onnxruntime/capi/libonnxruntime.so.* >/dev/null 2>&1 \
    || "$PY" -m pip install -q --no-deps --target "$GHOSTLINE_CACHE/ort-gpu" onnxruntime-gpu==1.31.1
  ORT_DYLIB_PATH="$(ls "$GHOSTLINE_CACHE"/ort-gpu/onnxruntime/capi/libonnxruntime.so.* | sort | tail -n 1)"
  "$PY" inference-backend/scripts/fetch_default_model.py --variant cuda-fp16
  case " $* " in
    *" --model"*) ;;  # the user chose a model
    *) set -- --model "$GHOSTLINE_CACHE/models/qwen2.5-coder-0.5b-instruct-fp16-cuda" "$@" ;;
  esac
fi
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
