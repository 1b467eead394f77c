#!/usr/bin/env bash
# Ghostline in one command: installs what is missing (Python tools in a private venv, ONNX
# Runtime), fetches and converts the default model (once; later runs reuse it), builds, and starts
# ghostline-serve on 127.0.0.1:8123. Extra arguments go to ghostline-serve (see --help).
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

ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$GHOSTLINE_CACHE"/venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so* | sort | tail -n 1)}"
export ORT_DYLIB_PATH

[ "${GHOSTLINE_PREPARE_ONLY:-0}" = 1 ] && exit 0

say "building (release)"
cargo build --release -q -p ghostline-serve -p ghostline-lsp
say "editors: point them at $(pwd)/target/release/ghostline-lsp (README.md, 'Editors'); it talks to http://127.0.0.1:8123"
say "starting ghostline-serve $*"
exec target/release/ghostline-serve "$@"
