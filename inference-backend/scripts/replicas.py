#!/usr/bin/env python3
"""N ghostline-serve replicas behind vllm-router, on loopback, in one command.

    GHOSTLINE_REPLICAS=3 ./run.sh                     # what a person runs (prepares, builds, then this)
    python inference-backend/scripts/replicas.py --replicas 3 --model DIR [-- serve args...]

The router listens where a single ghostline-serve would (127.0.0.1:8123 by default), so editors
and the LSP need no change; the replicas listen on the next N ports. The router is vLLM's
(`vllm-router` from PyPI, pinned below, installed once into its own venv): its
`consistent_hash` policy sends every request carrying the same `X-Session-ID` (ghostline-lsp
sends one per document) to the same replica, so the next keystroke finds its prompt in that
replica's prefix cache. `--policy round_robin` is there to measure what affinity is worth.

When a replica dies the router notices on the first failed request (circuit breaker at one
failure) or the next health check (every 2 s) and sends that replica's documents to the
others; nothing restarts it here (a supervisor's job: Kubernetes in deploy/k8s does). The
launcher stops everything on Ctrl-C or SIGTERM, and exits when the router does.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROUTER_PACKAGE = "vllm-router==0.1.17"
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("GHOSTLINE_CACHE", Path.home() / ".cache" / "ghostline"))


def say(message: str) -> None:
    print(f"\033[1m[ghostline replicas]\033[0m {message}", file=sys.stderr, flush=True)


def router_binary() -> Path:
    """vllm-router, installed on first use into its own venv (its web stack must not meet the
    model tools' pins)."""
    venv = CACHE / "router-venv"
    binary = venv / "bin" / "vllm-router"
    stamp = venv / ".ghostline-requirement"
    if binary.exists() and stamp.exists() and stamp.read_text() == ROUTER_PACKAGE:
        return binary
    say(f"installing {ROUTER_PACKAGE} into {venv}")
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", ROUTER_PACKAGE], check=True)
    stamp.write_text(ROUTER_PACKAGE)
    return binary


def get_status(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception:
        return None


def gpu_count() -> int:
    if not shutil.which("nvidia-smi"):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except Exception:
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


class Launch:
    def __init__(self, args: argparse.Namespace, serve_args: list[str]):
        self.args = args
        self.serve_args = serve_args
        self.replicas: list[subprocess.Popen] = []
        self.router: subprocess.Popen | None = None
        self.urls = [f"http://{args.host}:{args.port + 1 + i}" for i in range(args.replicas)]

    def start_replicas(self) -> None:
        gpus = gpu_count()
        threads = self.args.threads or max(1, (os.cpu_count() or 1) // self.args.replicas)
        for i, url in enumerate(self.urls):
            env = dict(os.environ)
            if gpus > 1 and "CUDA_VISIBLE_DEVICES" not in env:
                env["CUDA_VISIBLE_DEVICES"] = str(i % gpus)  # one GPU per replica, round robin
            command = [str(self.args.serve_bin), "--host", self.args.host,
                       "--port", str(self.args.port + 1 + i), "--threads", str(threads)]
            if self.args.model:
                command += ["--model", str(self.args.model)]
            if not any(a.startswith("--max-connections-per-address") for a in self.serve_args):
                # Every request comes through the router, from one address.
                command += ["--max-connections-per-address", "1024"]
            command += self.serve_args
            self.replicas.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL))
        say(f"{len(self.urls)} replicas starting ({threads} threads each): {' '.join(self.urls)}")
        deadline = time.monotonic() + self.args.ready_timeout
        for url, process in zip(self.urls, self.replicas):
            while get_status(f"{url}/ready") != 200:
                if process.poll() is not None:
                    raise SystemExit(f"replica {url} exited with {process.returncode} before it was ready")
                if time.monotonic() > deadline:
                    raise SystemExit(f"replica {url} not ready after {self.args.ready_timeout:.0f} s")
                time.sleep(0.2)

    def start_router(self) -> None:
        binary = self.args.router_bin or router_binary()
        command = [str(binary), "--host", self.args.host, "--port", str(self.args.port),
                   "--worker-urls", *self.urls, "--policy", self.args.policy,
                   # The replicas answer /health while they load; /ready only once they serve.
                   "--health-check-endpoint", "/ready",
                   "--health-check-interval-secs", "2", "--health-failure-threshold", "1",
                   # One failed request opens a replica's breaker, so the request is retried on
                   # another replica instead of a document's keystrokes failing one by one.
                   "--cb-failure-threshold", "1", "--cb-timeout-duration-secs", "10",
                   "--request-timeout-secs", "600", "--log-level", self.args.router_log,
                   # Its own Prometheus exporter: the port after the replicas' (not its fixed
                   # default, so that two set-ups can run side by side).
                   "--prometheus-host", self.args.host,
                   "--prometheus-port", str(self.args.port + len(self.urls) + 1)]
        # Its per-request routing lines are INFO whatever --log-level says; RUST_LOG quiets them.
        env = dict(os.environ)
        env.setdefault("RUST_LOG", {"warning": "warn"}.get(self.args.router_log, self.args.router_log))
        self.router = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        base = f"http://{self.args.host}:{self.args.port}"
        deadline = time.monotonic() + 60
        while get_status(f"{base}/v1/models") != 200:
            if self.router.poll() is not None:
                raise SystemExit(f"vllm-router exited with {self.router.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit("vllm-router did not start within 60 s")
            time.sleep(0.2)
        if self.args.state:
            self.args.state.write_text(json.dumps({
                "router": {"url": base, "pid": self.router.pid,
                           "metrics": f"http://{self.args.host}:{self.args.port + len(self.urls) + 1}/metrics"},
                "replicas": [{"url": url, "pid": p.pid} for url, p in zip(self.urls, self.replicas)],
            }, indent=2))
        say(f"ready: {base} (vllm-router, policy {self.args.policy}) in front of {len(self.urls)} replicas")
        say(f"editors: ghostline-lsp's backendUrl {base} (the default); /metrics: each replica's, and the router's "
            f"at http://{self.args.host}:{self.args.port + len(self.urls) + 1}/metrics")

    def watch(self) -> int:
        reported: set[int] = set()
        while True:
            if self.router is not None and self.router.poll() is not None:
                say(f"vllm-router exited with {self.router.returncode}")
                return self.router.returncode or 1
            for i, process in enumerate(self.replicas):
                if i not in reported and process.poll() is not None:
                    reported.add(i)
                    say(f"replica {self.urls[i]} exited with {process.returncode}; the router sends its documents to the others")
            if len(reported) == len(self.replicas):
                say("every replica exited")
                return 1
            time.sleep(0.5)

    def stop(self) -> None:
        processes = [p for p in [self.router, *self.replicas] if p is not None and p.poll() is None]
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + 15
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> int:
    argv = sys.argv[1:]
    serve_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, serve_args = argv[:cut], argv[cut + 1:]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=int(os.environ.get("GHOSTLINE_REPLICAS", "2")))
    ap.add_argument("--policy", default=os.environ.get("GHOSTLINE_ROUTER_POLICY", "consistent_hash"),
                    choices=["consistent_hash", "round_robin", "cache_aware", "power_of_two", "random"])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8123, help="the router's; replicas take the next N")
    ap.add_argument("--model", type=Path, help="passed to each replica (default: ghostline-serve's)")
    ap.add_argument("--threads", type=int, help="per replica (default: the cores divided among them)")
    ap.add_argument("--serve-bin", type=Path, default=ROOT / "target" / "release" / "ghostline-serve")
    ap.add_argument("--router-bin", type=Path, help="default: vllm-router, installed on first use")
    ap.add_argument("--router-log", default="warning", choices=["debug", "info", "warning", "error"])
    ap.add_argument("--ready-timeout", type=float, default=300)
    ap.add_argument("--state", type=Path, help="once ready, write the router's and replicas' URLs and PIDs here (JSON)")
    ap.add_argument("--prepare-only", action="store_true", help="install the router and exit")
    args = ap.parse_args(argv)
    if args.prepare_only:
        print(router_binary())
        return 0
    if args.replicas < 1:
        ap.error("--replicas must be at least 1")
    launch = Launch(args, serve_args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        launch.start_replicas()
        launch.start_router()
        return launch.watch()
    except KeyboardInterrupt:
        return 0
    finally:
        launch.stop()


if __name__ == "__main__":
    sys.exit(main())
