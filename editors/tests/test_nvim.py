"""The Neovim plugin in a real, headless Neovim (driven over its msgpack-RPC API with
keystrokes, as a user types), against the real ghostline-lsp and ghostline-serve with the
default model. Each scenario runs twice: with Neovim's built-in vim.lsp.inline_completion
(0.12+) and with the plugin's own extmark ghost text (the 0.10/0.11 path, forced with
native = false)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pynvim

from harness import ARTIFACTS, CACHE, EDITORS, LSP, Backend, test, wait_for

NVIM = os.environ.get("GHOSTLINE_NVIM") or shutil.which("nvim", path=str(CACHE / "venv" / "bin")) or "nvim"
GHOST_WAIT = 120  # seconds: a generous bound on the CPU model's first answer, not a speed check

GHOST_TEXT_LUA = r"""
local wanted = {}
for name, id in pairs(vim.api.nvim_get_namespaces()) do
  if name == 'ghostline' or name == 'nvim.lsp.inline_completion' then wanted[id] = true end
end
local out = {}
for _, m in ipairs(vim.api.nvim_buf_get_extmarks(0, -1, 0, -1, { details = true })) do
  local d = m[4]
  if wanted[d.ns_id] then
    local parts = {}
    for _, chunk in ipairs(d.virt_text or {}) do table.insert(parts, chunk[1]) end
    for _, line in ipairs(d.virt_lines or {}) do
      table.insert(parts, '\n')
      for _, chunk in ipairs(line) do table.insert(parts, chunk[1]) end
    end
    table.insert(out, table.concat(parts))
  end
end
return table.concat(out)
"""


class Editor:
    """One headless Neovim with the plugin set up against the shared backend."""

    def __init__(self, native: bool, files: dict[str, str]):
        self.dir = Path(tempfile.mkdtemp(prefix="ghostline-nvim-"))
        self.workspace = self.dir / "workspace"
        self.workspace.mkdir()
        (self.workspace / ".git").mkdir()
        for name, text in files.items():
            (self.workspace / name).write_text(text)
        backend = Backend.shared()
        setup = {
            "cmd": [str(LSP)],
            "native": native,
            "debounce_ms": 50,
            "settings": {"backendUrl": backend.url, "timeoutMs": 60000},
        }
        init = self.dir / "init.lua"
        init.write_text(
            f"vim.opt.rtp:prepend({json.dumps(str(EDITORS / 'nvim'))})\n"
            "vim.cmd('filetype plugin indent on')\n"
            "vim.opt.swapfile = false\n"
            f"vim.lsp.set_log_level('info')\n"
            f"require('ghostline').setup(vim.json.decode({json.dumps(json.dumps(setup))}))\n"
        )
        env = {
            **os.environ,
            "XDG_CONFIG_HOME": str(self.dir / "config"),
            "XDG_DATA_HOME": str(self.dir / "data"),
            "XDG_STATE_HOME": str(self.dir / "state"),
            "XDG_CACHE_HOME": str(self.dir / "cache"),
            "GHOSTLINE_LSP_LOG": "info",
        }
        self.nvim = pynvim.attach(
            "child", argv=[NVIM, "--embed", "--headless", "-i", "NONE", "-n", "-u", str(init)], env=env
        ) if _attach_takes_env() else _attach_with_env(init, env)
        self.nvim.command(f"cd {self.workspace}")

    def open(self, name: str):
        self.nvim.command(f"edit {self.workspace / name}")
        wait_for(lambda: self.lua("return #vim.lsp.get_clients({ name = 'ghostline', bufnr = 0 })") > 0,
                 30, "ghostline-lsp to attach")
        # initialize answered: the server's capabilities are known.
        wait_for(lambda: self.lua(
            "local c = vim.lsp.get_clients({ name = 'ghostline', bufnr = 0 })[1];"
            "return c and c.initialized and c.server_capabilities ~= nil"), 30, "initialize")

    def lua(self, code: str, *args):
        return self.nvim.exec_lua(code, *args)

    def ghost(self) -> str:
        return self.lua(GHOST_TEXT_LUA)

    def lines(self) -> list[str]:
        return self.nvim.current.buffer[:]

    def cursor(self):
        return tuple(self.nvim.current.window.cursor)

    def mode(self) -> str:
        return self.nvim.api.get_mode()["mode"]

    def type(self, keys: str):
        """Keys as a user types them (nvim_input: real typeahead, mappings apply)."""
        self.nvim.input(keys)
        # nvim_input only queues: wait until Neovim has taken all of it.
        wait_for(lambda: self.nvim.api.get_mode()["blocking"] is False, 10, "input to be consumed")

    def wait_ghost(self, contains: str = "") -> str:
        return wait_for(lambda: (g := self.ghost()) and contains in g and g, GHOST_WAIT,
                        f"ghost text containing {contains!r}")

    def close(self, name: str):
        try:
            log = self.dir / "state" / "nvim" / "lsp.log"
            if log.exists():
                shutil.copy(log, ARTIFACTS / f"nvim-{name}-lsp.log")
            self.nvim.command("qa!")
        except Exception:
            pass
        try:
            self.nvim.close()
        except Exception:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _attach_takes_env() -> bool:
    import inspect
    try:
        return "env" in inspect.signature(pynvim.attach).parameters
    except (TypeError, ValueError):
        return False


def _attach_with_env(init: Path, env: dict):
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        return pynvim.attach("child", argv=[NVIM, "--embed", "--headless", "-i", "NONE", "-n", "-u", str(init)])
    finally:
        os.environ.clear()
        os.environ.update(saved)


ADD_PY = 'def add(a, b):\n    \n\n\nif __name__ == "__main__":\n    print(add(1, 2))\n'
ADD_PY_TAIL = ["", "", 'if __name__ == "__main__":', "    print(add(1, 2))"]


def scenario(native: bool, name: str, files: dict[str, str], body):
    editor = Editor(native, files)
    try:
        body(editor)
    finally:
        editor.close(f"{name}-{'native' if native else 'extmarks'}")


def ghost_then_tab(editor: Editor):
    editor.open("add.py")
    editor.type("2GA")  # line 2 (four spaces of indentation), append
    assert editor.mode() == "i"
    editor.type("return ")
    ghost = editor.wait_ghost("a + b")
    assert not ghost.startswith("return"), ghost
    before = editor.lines()
    assert before[1] == "    return ", before
    editor.type("<Tab>")
    wait_for(lambda: editor.lines()[1] != "    return ", 10, "the suggestion to be inserted")
    lines = editor.lines()
    assert lines[1].startswith("    return a + b"), lines
    # Everything after the cursor is kept.
    assert lines[2:] == ADD_PY_TAIL, lines
    assert lines[0] == "def add(a, b):", lines
    # The cursor is at the end of the inserted text, still in insert mode.
    assert editor.mode() == "i"
    assert editor.cursor() == (2, len(lines[1])), (editor.cursor(), lines[1])
    wait_for(lambda: "a + b" not in editor.ghost(), 10, "the ghost text to go after accepting")


def text_after_cursor_on_the_line(editor: Editor):
    editor.open("calc.py")
    # Cursor between "(" and ")" of `total = sum()  # all of them`.
    editor.type("3G")
    editor.type("f(a")
    assert editor.cursor() == (3, len("total = sum(")), editor.cursor()
    editor.type("n")
    ghost = editor.wait_ghost()
    editor.type("<Tab>")
    wait_for(lambda: editor.lines()[2] != "total = sum(n)  # all of them", 10, "the suggestion to be inserted")
    line = editor.lines()[2]
    assert line.startswith("total = sum(n"), line
    assert line.endswith(")  # all of them"), (line, ghost)
    assert line.count("(") == line.count(")"), (line, ghost)
    assert editor.lines()[3:] == ["print(total)"], editor.lines()


CALC_PY = "numbers = [1, 2, 3]\n\ntotal = sum()  # all of them\nprint(total)\n"


def accept_word_then_rest(editor: Editor):
    editor.open("add.py")
    editor.type("2GA")
    editor.type("return ")
    editor.wait_ghost("a + b")
    editor.type("<M-Right>")
    wait_for(lambda: editor.lines()[1] != "    return ", 10, "the first word to be inserted")
    assert editor.lines()[1] == "    return a", editor.lines()
    # The rest is still offered and Tab takes it.
    editor.wait_ghost("+ b")
    editor.type("<Tab>")
    wait_for(lambda: editor.lines()[1].startswith("    return a + b"), 30, "the rest to be inserted")
    assert editor.lines()[2:] == ADD_PY_TAIL, editor.lines()
    # The acceptance stats saw it: one suggestion partly accepted (a word), one accepted.
    row = checkhealth_stats_row(editor, "python")
    shown, accepted, partly = (int(v) for v in row[2:5])
    assert shown >= 1 and accepted == 1 and partly == 1, row


def checkhealth_stats_row(editor: Editor, language: str) -> list[str]:
    """The "Today" row for `language` of the acceptance stats in :checkhealth ghostline:
    [language, model, shown, accepted, partly, rate, p50, p90]."""
    editor.nvim.command("checkhealth ghostline")
    text = "\n".join(editor.lines())
    assert "acceptance stats" in text, text
    today = text.split("Today", 1)[1]
    for line in today.splitlines():
        words = line.split()
        if words[:1] == ["-"]:
            words = words[1:]
        if words[:1] == [language]:
            return words
    raise AssertionError(f"no {language} row today in:\n{text}")


def dismiss_and_leave_insert(editor: Editor):
    editor.open("add.py")
    editor.type("2GA")
    editor.type("return ")
    editor.wait_ghost("a + b")
    editor.type("<C-]>")
    wait_for(lambda: editor.ghost() == "", 10, "dismiss to clear the ghost text")
    assert editor.lines()[1] == "    return ", editor.lines()
    # Typing asks again; leaving insert mode clears it.
    editor.type("a")
    editor.wait_ghost()
    editor.type("<Esc>")
    wait_for(lambda: editor.ghost() == "", 10, "<Esc> to clear the ghost text")
    assert editor.lines()[1] == "    return a", editor.lines()
    # Tab with nothing shown keeps its usual meaning.
    editor.type("o<Tab>x<Esc>")
    assert editor.lines()[2].strip() == "x" and editor.lines()[2] != "x", editor.lines()


for native in (True, False):
    kind = "native" if native else "extmarks"
    for fn, files in (
        (ghost_then_tab, {"add.py": ADD_PY}),
        (text_after_cursor_on_the_line, {"calc.py": CALC_PY}),
        (accept_word_then_rest, {"add.py": ADD_PY}),
        (dismiss_and_leave_insert, {"add.py": ADD_PY}),
    ):
        def run(native=native, fn=fn, files=files):
            scenario(native, fn.__name__, files, fn)
        run.__name__ = f"{fn.__name__}_{kind}"
        run.__module__ = __name__
        test(run)


@test
def entering_insert_mode_asks_extmarks():
    # Nothing typed: entering insert mode on the empty body line is the ask (it also starts the
    # server's warm-ups for the spot, and resting there asks again on CursorHoldI).
    def body(editor: Editor):
        editor.open("add.py")
        editor.type("2GA")
        assert editor.mode() == "i"
        ghost = editor.wait_ghost()
        assert ghost.strip(), ghost
        assert editor.lines()[1] == "    ", editor.lines()
    scenario(False, "insert-enter", {"add.py": ADD_PY}, body)


@test
def checkhealth_reports_server_and_backend():
    def body(editor: Editor):
        editor.open("add.py")
        editor.nvim.command("checkhealth ghostline")
        text = "\n".join(editor.lines())
        assert "ghostline" in text, text
        assert "is ready" in text, text
        assert "ERROR" not in text, text
        assert "ghostline-lsp client(s) running" in text, text
        assert "acceptance stats" in text and "Today" in text, text
    scenario(False, "checkhealth", {"add.py": ADD_PY}, body)


@test
def status_and_toggle():
    def body(editor: Editor):
        editor.open("add.py")
        assert editor.lua("return require('ghostline').status()") == "ready"
        editor.nvim.command("Ghostline disable")
        assert editor.lua("return require('ghostline').status()") == "disabled"
        editor.type("2GA")
        editor.type("return ")
        time.sleep(3)  # nothing may appear while disabled
        assert editor.ghost() == ""
        editor.type("<Esc>")
        editor.nvim.command("Ghostline toggle")
        editor.type("A ")
        editor.wait_ghost()
    scenario(False, "status", {"add.py": ADD_PY}, body)


@test
def lua_unit_tests():
    result = subprocess.run([NVIM, "--headless", "-l", str(EDITORS / "nvim" / "tests" / "util_spec.lua")],
                            capture_output=True, text=True, timeout=60, cwd=EDITORS / "nvim")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "util_spec: ok" in result.stdout + result.stderr, result.stdout + result.stderr
