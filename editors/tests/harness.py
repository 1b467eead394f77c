"""A tiny test runner for the editor integrations, plus what the tests share: the real
ghostline-serve (started once, on a free loopback port) and a real LSP client for
ghostline-lsp over stdio. Prints one line per test and ends with `N passed, M failed`."""
from __future__ import annotations

import atexit
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EDITORS = ROOT / "editors"
CACHE = Path(os.environ.get("GHOSTLINE_CACHE", Path.home() / ".cache" / "ghostline"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
SERVE = Path(os.environ.get("GHOSTLINE_SERVE_BIN", TARGET / "debug" / "ghostline-serve"))
LSP = Path(os.environ.get("GHOSTLINE_LSP_BIN", TARGET / "debug" / "ghostline-lsp"))
DEFAULT_MODEL = Path(
    os.environ.get("GHOSTLINE_DEFAULT_MODEL", CACHE / "models" / "qwen2.5-coder-0.5b-instruct-q4km-cpu")
)
ARTIFACTS = Path(os.environ.get("GHOSTLINE_EDITOR_ARTIFACTS", TARGET / "editor-tests"))

_tests: list[tuple[str, callable]] = []


def test(fn):
    _tests.append((f"{fn.__module__}.{fn.__name__}", fn))
    return fn


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Polls `predicate` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    """The real ghostline-serve with the default model, shared by every test."""

    _instance: "Backend | None" = None

    def __init__(self, model: Path):
        assert SERVE.exists(), f"no {SERVE} (cargo build -p ghostline-serve)"
        assert (model / "ghostline.json").exists(), f"no model at {model} (./run.sh prepares it)"
        self.port = free_port()
        self.log = open(ARTIFACTS / "ghostline-serve.log", "w")
        self.proc = subprocess.Popen(
            [str(SERVE), "--model", str(model), "--port", str(self.port), "--threads", "1", "--device", "cpu"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
        )
        atexit.register(self.stop)
        wait_for(self._ready, 300, "ghostline-serve /ready", interval=0.2)

    def _ready(self):
        assert self.proc.poll() is None, f"ghostline-serve exited with {self.proc.returncode}"
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as r:
                return r.status == 200
        except Exception:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @classmethod
    def shared(cls) -> "Backend":
        if cls._instance is None:
            cls._instance = Backend(DEFAULT_MODEL)
        return cls._instance


class LspClient:
    """ghostline-lsp over real stdio, Content-Length framed JSON-RPC."""

    def __init__(self, env: dict | None = None):
        assert LSP.exists(), f"no {LSP} (cargo build -p ghostline-lsp)"
        self.stderr = open(ARTIFACTS / "ghostline-lsp.stderr.log", "a")
        self.proc = subprocess.Popen(
            [str(LSP)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            # The tests' sessions stay out of the person's acceptance stats.
            env={"GHOSTLINE_DATA_DIR": str(ARTIFACTS / "data"), **os.environ, **(env or {})},
        )
        self.incoming: queue.Queue = queue.Queue()
        self.next_id = 1
        self.backlog: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.incoming.put(json.loads(out.read(length)))

    def send(self, message: dict):
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def notify(self, method: str, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params, timeout: float = 60) -> dict:
        rid = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no answer to {method} within {timeout} s")
            try:
                message = self.incoming.get(timeout=left)
            except queue.Empty:
                continue
            if message.get("id") == rid and "method" not in message:
                assert "error" not in message, f"{method} failed: {message['error']}"
                return message["result"]
            self.backlog.append(message)

    def close(self):
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.proc.wait(10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def lsp_setting_names() -> set[str]:
    """The camelCase names of the fields of ghostline-lsp's `Settings` struct."""
    source = (ROOT / "lsp-server" / "src" / "settings.rs").read_text()
    body = source.split("pub struct Settings {", 1)[1].split("\n}", 1)[0]
    names = re.findall(r"^\s*pub (\w+):", body, re.M)
    assert names, "no fields found in Settings"
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), n) for n in names}


def apply_edit(text: str, edit: dict) -> str:
    lines = text.split("\n")
    def offset(pos):  # utf-8 columns were negotiated; the test text is ASCII anyway
        return sum(len(l) + 1 for l in lines[: pos["line"]]) + pos["character"]
    start, end = offset(edit["range"]["start"]), offset(edit["range"]["end"])
    return text[:start] + edit["newText"] + text[end:]


def main(modules: list[str]) -> int:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    only = os.environ.get("GHOSTLINE_EDITOR_TESTS")  # substring filter, for development
    for name in modules:
        __import__(name)
    passed = failed = 0
    for name, fn in _tests:
        if only and only not in name:
            continue
        start = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            print(f"FAIL {name} ({time.monotonic() - start:.1f} s)", flush=True)
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print(f"ok   {name} ({time.monotonic() - start:.1f} s)", flush=True)
    if Backend._instance:
        Backend._instance.stop()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed or passed == 0 else 0
