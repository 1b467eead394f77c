#!/usr/bin/env bash
# Installs code-server (npm) for the end-to-end test into $1 (default
# ${GHOSTLINE_CACHE:-~/.cache/ghostline}/code-server), without the downloads from GitHub that its
# own postinstall makes: ripgrep comes from Debian, kerberos is built from source against
# Debian's libkrb5-dev. Idempotent: a finished install is left alone.
set -euo pipefail
VERSION=4.100.3 # the last line that accepts Node 20
DIR="${1:-${GHOSTLINE_CACHE:-$HOME/.cache/ghostline}/code-server}"
say() { printf '\033[1m[code-server]\033[0m %s\n' "$*" >&2; }
CS="$DIR/node_modules/code-server"
if [ -f "$CS/.ghostline-installed-$VERSION" ]; then
  exit 0
fi
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v rg >/dev/null || need+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
command -v g++ >/dev/null || need+=(g++)
command -v make >/dev/null || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
  say "apt-get install ${need[*]}"
  if [ "$(id -u)" != 0 ]; then
    say "not root: install ${need[*]} by hand"
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null || {
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
  }
fi
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name":"ghostline-code-server","private":true}' > package.json
say "npm install code-server@$VERSION (scripts off)"
npm install --no-audit --no-fund --loglevel=error --ignore-scripts "code-server@$VERSION"
say "argon2 (its prebuilt download is unreachable: built from source)"
npm_config_yes=true npm rebuild --loglevel=error argon2
cd "$CS/lib/vscode"
say "VS Code's dependencies (scripts off), ripgrep from Debian"
npm install --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error
mkdir -p node_modules/@vscode/ripgrep/bin
cp "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
say "building the native modules (a few minutes on two cores)"
npm_config_yes=true npm rebuild --loglevel=error kerberos @parcel/watcher @vscode/spdlog @vscode/deviceid native-watchdog node-pty
# What code-server's postinstall.sh does besides `npm install`:
ln -sfn node_modules node_modules.asar
(cd bin/remote-cli && ln -sfn code-linux.sh code-server)
(cd bin/helpers && ln -sfn browser-linux.sh browser.sh)
(cd extensions && npm install --omit=dev --no-audit --no-fund --loglevel=error)
touch "$CS/.ghostline-installed-$VERSION"
say "installed in $CS"
