"""VS Code extension: its unit tests (`npm test`: TypeScript compiled, node's test runner) and
`vsce package` accepting its package.json and producing a .vsix with what it needs at run time."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from harness import ARTIFACTS, CACHE, EDITORS, LSP, Backend, free_port, test, wait_for

VSCODE = EDITORS / "vscode"


def npm(*args: str, timeout: int = 300) -> str:
    result = subprocess.run(["npm", *args], cwd=VSCODE, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    out = result.stdout + result.stderr
    assert result.returncode == 0, f"npm {' '.join(args)} failed ({result.returncode}):\n{out[-4000:]}"
    return out


@test
def npm_test_unit_tests():
    out = npm("test")
    passed = int(re.search(r"^# pass (\d+)", out, re.M).group(1))
    failed = int(re.search(r"^# fail (\d+)", out, re.M).group(1))
    print(f"     (node:test inside npm test: {passed} ok, {failed} not ok)")
    assert failed == 0 and passed >= 10, out[-3000:]


@test
def vsce_packages_the_extension():
    vsix = VSCODE / "ghostline.vsix"
    vsix.unlink(missing_ok=True)
    npm("run", "compile")
    npm("run", "package")
    assert vsix.exists()
    names = set(zipfile.ZipFile(vsix).namelist())
    for wanted in ("extension/package.json", "extension/out/extension.js", "extension/readme.md",
                   "extension/node_modules/vscode-languageclient/lib/node/main.js", "extension.vsixmanifest"):
        assert wanted in names or wanted.lower() in {n.lower() for n in names}, (wanted, sorted(names)[:20])
    assert not any(n.startswith("extension/src/") for n in names), "sources packaged"
    (ARTIFACTS / "ghostline.vsix").write_bytes(vsix.read_bytes())


CODE_SERVER_DIR = Path(os.environ.get("GHOSTLINE_CODE_SERVER_DIR", CACHE / "code-server"))
ADD_PY = 'def add(a, b):\n    \n\n\nif __name__ == "__main__":\n    print(add(1, 2))\n'


def jsonrpc_frames(data: bytes) -> list[dict]:
    """The messages of an LSP byte stream (`Content-Length` framing)."""
    messages, at = [], 0
    while (header_end := data.find(b"\r\n\r\n", at)) >= 0:
        length = int(re.search(rb"Content-Length: *(\d+)", data[at:header_end], re.I).group(1))
        messages.append(json.loads(data[header_end + 4: header_end + 4 + length]))
        at = header_end + 4 + length
    return messages


@test
def code_server_shows_ghost_text_and_tab_accepts():
    """A real VS Code (code-server) in headless Chromium with the packaged extension."""
    code_server = CODE_SERVER_DIR / "node_modules" / ".bin" / "code-server"
    assert code_server.exists(), f"no {code_server} (editors/vscode/test-e2e/install-code-server.sh installs it)"
    vsix = VSCODE / "ghostline.vsix"
    if not vsix.exists():
        npm("run", "compile")
        npm("run", "package")
    backend = Backend.shared()
    tmp = Path(tempfile.mkdtemp(prefix="ghostline-code-server-"))
    workspace, user_data, extensions = tmp / "workspace", tmp / "user-data", tmp / "extensions"
    for d in (workspace, user_data / "User", extensions, tmp / "config"):
        d.mkdir(parents=True)
    (workspace / "add.py").write_text(ADD_PY)
    # The LSP behind a tee, to see what VS Code sends it.
    lsp_input = ARTIFACTS / "code-server-lsp-input.jsonrpc"
    lsp_input.unlink(missing_ok=True)
    wrapper = tmp / "ghostline-lsp-tee"
    wrapper.write_text(f'#!/bin/sh\ntee -a "{lsp_input}" | "{LSP}" "$@"\n')
    wrapper.chmod(0o755)
    (user_data / "User" / "settings.json").write_text(json.dumps({
        "ghostline.serverPath": str(wrapper),
        "ghostline.backendUrl": backend.url,
        "ghostline.timeoutMs": 60000,  # a generous bound for the CPU model, not a speed check
        "editor.inlineSuggest.enabled": True,
        "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
        "editor.suggestOnTriggerCharacters": False,
        "editor.wordBasedSuggestions": "off",
        "security.workspace.trust.enabled": False,
        "workbench.startupEditor": "none",
        "workbench.tips.enabled": False,
        "telemetry.telemetryLevel": "off",
        "extensions.autoCheckUpdates": False,
        "extensions.autoUpdate": False,
        "update.mode": "none",
    }))
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp / "config"), "XDG_DATA_HOME": str(tmp / "data"),
           "GHOSTLINE_LSP_LOG": "info"}
    common = ["--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]
    installed = subprocess.run([str(code_server), *common, "--install-extension", str(vsix)],
                               capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert "successfully installed" in installed.stdout + installed.stderr, installed.stdout + installed.stderr
    port = free_port()
    log = open(ARTIFACTS / "code-server.log", "w")
    server = subprocess.Popen(
        [str(code_server), *common, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}",
         "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
         "--disable-getting-started-override", "--ignore-last-opened", str(workspace)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    try:
        def healthy():
            assert server.poll() is None, f"code-server exited with {server.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return r.status == 200
            except Exception:
                return False
        wait_for(healthy, 60, "code-server /healthz", interval=0.3)
        e2e = subprocess.run(["node", str(VSCODE / "test-e2e" / "e2e.mjs")], cwd=VSCODE, capture_output=True,
                             text=True, timeout=400, stdin=subprocess.DEVNULL, env={
                                 **os.environ, "CODE_SERVER_URL": f"http://127.0.0.1:{port}",
                                 "WORKSPACE": str(workspace), "FILE": "add.py", "LINE": "2",
                                 "TYPE": "return ", "EXPECT": "a + b", "SCREENSHOT_DIR": str(ARTIFACTS)})
        (ARTIFACTS / "code-server-e2e.log").write_text(e2e.stdout + e2e.stderr)
        assert e2e.returncode == 0, e2e.stdout[-3000:] + e2e.stderr[-3000:]
        lines = (workspace / "add.py").read_text().split("\n")
        assert lines[1].startswith("    return a + b"), lines
        assert lines[2:] == ADD_PY.split("\n")[2:], lines
        assert (ARTIFACTS / "vscode-ghost-text.png").stat().st_size > 10000
        # Placing the cursor on code (the end of `def add(a, b):`) asked for code actions there
        # before the first keystroke: the sign the LSP warms the prompt on
        # (server/api/code_action.rs). VS Code does not ask where the cursor has only
        # whitespace around it, as on the indented empty line below.
        messages = jsonrpc_frames(lsp_input.read_bytes())
        methods = [m.get("method") for m in messages]
        assert "textDocument/didChange" in methods, methods
        before_typing = messages[:methods.index("textDocument/didChange")]
        hints = [m["params"]["range"] for m in before_typing if m.get("method") == "textDocument/codeAction"
                 and m["params"]["textDocument"]["uri"].endswith("/add.py")]
        assert {"line": 0, "character": len("def add(a, b):")} in [r["end"] for r in hints if r["start"] == r["end"]], \
            (hints, methods[:40])
        # Tab ran the item's command: the server counts the accept (acceptance stats).
        accepts = [m for m in messages if m.get("method") == "workspace/executeCommand"
                   and m["params"]["command"] == "ghostline.accept"]
        assert accepts and accepts[0]["params"]["arguments"][0]["uri"].endswith("/add.py"), methods
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
