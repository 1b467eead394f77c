"""VS Code extension: its unit tests (`npm test`: TypeScript compiled, node's test runner) and
`vsce package` accepting its package.json and producing a .vsix with what it needs at run time."""
from __future__ import annotations

import re
import subprocess
import zipfile

from harness import ARTIFACTS, EDITORS, test

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
