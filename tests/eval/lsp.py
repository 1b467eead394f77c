"""Processes the evaluation drives: ghostline-serve (HTTP) and ghostline-lsp (LSP over stdio)."""
from __future__ import annotations

import glob
import json
import os
import queue
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GHOSTLINE_CACHE", Path.home() / ".cache" / "ghostline"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


class PipelineError(Exception):
    """Something in the LSP → backend pipeline failed (not a bad suggestion: a broken run)."""


def _newest_source(crate: str) -> float:
    paths = [ROOT / "Cargo.lock", ROOT / "Cargo.toml", ROOT / crate / "Cargo.toml"]
    paths += [Path(p) for p in glob.glob(str(ROOT / crate / "src" / "**" / "*"), recursive=True)]
    return max((p.stat().st_mtime for p in paths if p.is_file()), default=0.0)


def binary(name: str, crate: str, env: str, build: bool, profiles: tuple[str, ...] = ("release",)) -> Path:
    """$env, or target/<profile>/<name> for the first profile whose binary is newer than its
    sources; when none is, cargo builds the first profile (unless `build` is false, when the
    newest existing one is used with a warning)."""
    if os.environ.get(env):
        path = Path(os.environ[env])
        if not path.is_file():
            raise PipelineError(f"{env}={path} does not exist")
        return path
    newest = _newest_source(crate)
    paths = [TARGET / p / name for p in profiles]
    for path in paths:
        if path.is_file() and path.stat().st_mtime >= newest:
            return path
    if build:
        flags = ["--release"] if profiles[0] == "release" else []
        print(f"[eval] building {name} (cargo build {' '.join(flags)} -p {name})", flush=True)
        subprocess.run(["cargo", "build", *flags, "-q", "-p", name], cwd=ROOT, check=True)
        return paths[0]
    existing = [p for p in paths if p.is_file()]
    if not existing:
        raise PipelineError(f"no {' or '.join(map(str, paths))} (and --no-build)")
    path = max(existing, key=lambda p: p.stat().st_mtime)
    print(f"[eval] warning: {path} is older than its sources (--no-build)", flush=True)
    return path


def ort_library() -> str | None:
    if os.environ.get("ORT_DYLIB_PATH"):
        return os.environ["ORT_DYLIB_PATH"]
    found = sorted(glob.glob(str(CACHE / "venv" / "lib" / "python3*" / "site-packages" / "onnxruntime" / "capi" / "libonnxruntime.so*")))
    return found[-1] if found else None


class Backend:
    """ghostline-serve on a free loopback port, CPU, the given model."""

    def __init__(self, serve: Path, model: Path, threads: int, log_path: Path, extra: list[str] = ()):
        if not (model / "ghostline.json").is_file():
            raise PipelineError(f"no model at {model} (./run.sh or ./test.sh prepares it)")
        env = dict(os.environ)
        lib = ort_library()
        if lib:
            env["ORT_DYLIB_PATH"] = lib
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [str(serve), "--model", str(model), "--port", "0", "--device", "cpu", "--threads", str(threads), *extra],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + 300
        self.url = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PipelineError(f"ghostline-serve exited with {self.proc.returncode}:\n{log_path.read_text()[-3000:]}")
            if self.url is None:
                for line in log_path.read_text(errors="replace").splitlines():
                    if "listening on http://" in line:
                        self.url = "http://" + line.split("listening on http://", 1)[1].split()[0]
            if self.url:
                try:
                    with urllib.request.urlopen(f"{self.url}/ready", timeout=2) as r:
                        if r.status == 200:
                            return
                except Exception:
                    pass
            time.sleep(0.2)
        self.stop()
        raise PipelineError(f"ghostline-serve not ready after 300 s:\n{log_path.read_text()[-3000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


class LspClient:
    """ghostline-lsp over stdio, Content-Length framed JSON-RPC. Requests the server sends
    (workspace/configuration, client/registerCapability, ...) are answered; notifications
    are kept in `notifications`."""

    def __init__(self, lsp: Path, stderr_path: Path, settings: dict):
        self.settings = settings
        self.stderr = open(stderr_path, "a")
        env = {**os.environ, "GHOSTLINE_LSP_LOG": os.environ.get("GHOSTLINE_LSP_LOG", "info")}
        # The harness's sessions are not the person's: their acceptance stats and affinity key
        # go under target/, not the user's data folder.
        env.setdefault("GHOSTLINE_DATA_DIR", str(TARGET / "eval-data"))
        self.proc = subprocess.Popen(
            [str(lsp)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env,
        )
        self.incoming: queue.Queue = queue.Queue()
        self.notifications: list[dict] = []
        self.next_id = 1
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        try:
            while True:
                length = None
                while True:
                    line = out.readline()
                    if not line:
                        self.incoming.put(None)
                        return
                    line = line.strip()
                    if not line:
                        break
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                if length is None:
                    continue
                message = json.loads(out.read(length))
                if "method" in message and "id" in message:
                    self._answer(message)
                else:
                    self.incoming.put(message)
        except Exception as e:  # malformed frame: surface it as a pipeline failure
            self.incoming.put({"_reader_error": repr(e)})

    def _answer(self, message: dict):
        method = message["method"]
        if method == "workspace/configuration":
            items = (message.get("params") or {}).get("items", [])
            result = [self.settings for _ in items]
        else:
            result = None
        self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def send(self, message: dict):
        body = json.dumps(message).encode()
        with self.lock:
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()

    def notify(self, method: str, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params, timeout: float = 60) -> dict:
        """The whole response (with `result` or `error`)."""
        rid = self.next_id
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PipelineError(f"no answer to {method} within {timeout:.0f} s")
            try:
                message = self.incoming.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                raise PipelineError(f"ghostline-lsp exited (code {self.proc.poll()}) while waiting for {method}")
            if "_reader_error" in message:
                raise PipelineError(f"malformed message from ghostline-lsp: {message['_reader_error']}")
            if message.get("id") == rid:
                return message
            self.notifications.append(message)

    def call(self, method: str, params, timeout: float = 60):
        response = self.request(method, params, timeout)
        if "error" in response:
            raise PipelineError(f"{method} failed: {response['error']}")
        return response.get("result")

    def close(self):
        try:
            if self.proc.poll() is None:
                self.request("shutdown", None, timeout=10)
                self.notify("exit", None)
                self.proc.wait(10)
        except Exception:
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.stderr.close()
