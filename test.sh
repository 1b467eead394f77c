#!/usr/bin/env bash
# Every test of the repository: installs what is missing, prepares the default model and the tiny
# random-weight test models, then runs the Rust tests (unit, integration against the real
# binaries and models, end to end) and the editor tests.
set -euo pipefail
cd "$(dirname "$0")"
export GHOSTLINE_CACHE="${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}"
say() { printf '\033[1m[ghostline test]\033[0m %s\n' "$*" >&2; }

GHOSTLINE_PREPARE_ONLY=1 ./run.sh
PY="$GHOSTLINE_CACHE/venv/bin/python"

say "model preparation: GGUF blocks against ggml's own dequantization"
"$PY" -m unittest inference-backend/scripts/test_gguf_onnx.py
TOKENIZER="$GHOSTLINE_CACHE/models/qwen2.5-coder-0.5b-instruct-q4km-cpu/tokenizer.json"
for layout in genai optimum genai-cuda-fp16; do
  "$PY" inference-backend/scripts/make_tiny_model.py --layout "$layout" \
    --out "$GHOSTLINE_CACHE/models/tiny-qwen2-$layout" --tokenizer "$TOKENIZER"
done

# vllm-router, for the scale-out test (lsp-server/tests/scale_out.rs starts replicas.py).
python3 inference-backend/scripts/replicas.py --prepare-only >/dev/null

# The pinned evaluation packages: the redaction false-positive test reads them.
"$PY" tests/eval/packages.py

say "clippy: every warning is an error, tests and benches included"
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo clippy --workspace --all-targets -q -- -D warnings

say "cargo tests"
# Two test threads: each integration test starts real servers, and CI has two cores.
cargo test --workspace -q -- --test-threads=2

say "the README's team certificate, made by its own openssl line, used end to end (cargo test makes one to the same recipe with rcgen)"
command -v openssl >/dev/null || { say "installing openssl"; apt-get update -qq && apt-get install -y -qq openssl >/dev/null; }
recipe="$(awk '/^### /{s=($0 ~ /^### A team certificate/)} s && /^openssl req -x509/' README.md)"
[ "$(printf '%s\n' "$recipe" | grep -c .)" = 1 ] || { echo "README.md: expected one 'openssl req -x509' line under '### A team certificate'" >&2; exit 1; }
team_cert_dir="$(mktemp -d)"
(cd "$team_cert_dir" && sh -c "$recipe" 2>/dev/null)
# The premise of the LSP's pinning (backend/tls.rs): OpenSSL marks it a CA, which webpki refuses as a server's own.
openssl x509 -noout -text -in "$team_cert_dir/ghostline.pem" | grep -q "CA:TRUE"
GHOSTLINE_TEAM_CERT_DIR="$team_cert_dir" cargo test -q -p ghostline-lsp --test tls_and_limits -- --test-threads=2 the_readme_team_certificate
rm -rf "$team_cert_dir"

say "the LSP's backend tests again with a HOME that holds no cache: they must find models and ONNX Runtime through GHOSTLINE_CACHE alone"
fake_home="$(mktemp -d)"
RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" HOME="$fake_home" \
  cargo test -q -p ghostline-lsp --test inline_completion -- --test-threads=2
rm -rf "$fake_home"

say "deploy/: Kubernetes manifests, Dockerfile and router discovery, checked without a cluster"
GHOSTLINE_SERVE_BIN="$(pwd)/target/debug/ghostline-serve" bash deploy/validate.sh

say "context evaluation, smoke (tiny random model: checks the pipeline, not the quality)"
"$PY" tests/eval/run.py --smoke

say "editor tests"
bash editors/test.sh
