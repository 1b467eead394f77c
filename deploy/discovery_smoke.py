#!/usr/bin/env python3
"""Runs the router Deployment's own args (from a rendered overlay) with vllm-router's Kubernetes
service discovery against a fake API server on loopback, and checks what the manifests rely on.

    python deploy/discovery_smoke.py rendered-router-overlay.yaml

No cluster: a small HTTP server plays the API server (pods in namespace `ghostline`, through a
kubeconfig that points at it), and four fake workers on 127.0.0.2-5 play the pods (Linux routes
all of 127/8 to loopback). Checked:
  * the router reads pods with list and watch, namespaced (what the Role grants);
  * it adds only Running + Ready pods labelled app=ghostline-serve, on --service-discovery-port;
  * it checks a discovered pod's /health once before adding it (ghostline-serve answers /health
    as soon as it listens), then health-checks /ready every 2 s (--health-check-endpoint);
  * two router processes (the Deployment runs 2 replicas) send every session to the same worker;
  * a session (X-Session-ID) stays on one worker, sessions spread over the workers, and when one
    worker's /ready turns 503 (draining, or the model gone) only its sessions move.
Not checked: a real API server's auth/RBAC enforcement, watch events (readiness changing while
the router runs), TLS.
"""

from __future__ import annotations

import collections
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import yaml

NS = "ghostline"
api_log: list[str] = []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod(name: str, ip: str, ready: bool, app: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "uid": f"{name}-uid", "resourceVersion": "5",
                         "labels": {"app": app}},
            "spec": {"containers": [{"name": "serve", "image": "ghostline-serve"}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


PODS = [pod("serve-a", "127.0.0.2", True, "ghostline-serve"),
        pod("serve-b", "127.0.0.3", True, "ghostline-serve"),
        pod("serve-loading", "127.0.0.4", False, "ghostline-serve"),  # not Ready: /ready 503
        pod("other-app", "127.0.0.5", True, "other")]


class FakeApi(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        u = urlparse(self.path)
        q = parse_qs(u.query)
        api_log.append(f"GET {u.path} watch={q.get('watch', ['false'])[0]}")
        if not u.path.startswith(f"/api/v1/namespaces/{NS}/pods"):
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        sel = [s.split("=", 1) for s in q.get("labelSelector", [""])[0].split(",") if s]
        items = [p for p in PODS if all(p["metadata"]["labels"].get(k) == v for k, v in sel)]
        if q.get("watch", ["false"])[0] in ("1", "true"):
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            time.sleep(60)  # no events; the test is over long before
            return
        body = json.dumps({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "5"},
                           "items": items}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def worker_handler(name: str, ready: bool):
    state = {"ready": ready}

    class W(http.server.BaseHTTPRequestHandler):
        ready_state = state

        def reply(self, code: int, obj: dict) -> None:
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_GET(self):  # noqa: N802
            if self.path == "/health":  # like ghostline-serve: up as soon as it listens
                self.reply(200, {"status": "ok"})
            elif self.path == "/ready":
                ok = state["ready"]
                self.reply(200 if ok else 503, {"status": "ready" if ok else "loading"})
            else:
                self.reply(404, {"error": "not_found"})

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.reply(200, {"worker": name, "session": self.headers.get("x-session-id"),
                             "choices": [{"text": "", "index": 0, "finish_reason": "length"}]})

        def log_message(self, *a):
            pass
    return W


def serve(server: http.server.HTTPServer) -> http.server.HTTPServer:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def router_args(rendered: Path, port: int, sd_port: int, prom_port: int) -> list[str]:
    docs = [d for d in yaml.safe_load_all(rendered.read_text()) if d]
    dep = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ghostline-router")
    c = dep["spec"]["template"]["spec"]["containers"][0]
    out = []
    for a in c["args"]:
        a = a.replace("$(POD_NAMESPACE)", NS)
        for flag, val in (("--host", "127.0.0.1"), ("--port", port), ("--service-discovery-port", sd_port),
                          ("--prometheus-host", "127.0.0.1"), ("--prometheus-port", prom_port)):
            if a.startswith(flag + "="):
                a = f"{flag}={val}"
        out.append(a)
    return out


def ask(port: int, session: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/completions",
                                 data=b'{"prompt": "x", "max_tokens": 1}',
                                 headers={"content-type": "application/json", "x-session-id": session})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["worker"]
    except (urllib.error.URLError, OSError, KeyError) as e:
        return f"error: {e}"


def main() -> int:
    rendered = Path(sys.argv[1])
    exe = shutil.which("vllm-router")
    if not exe:
        sys.exit("vllm-router not on PATH")
    sd_port, api_port = free_port(), free_port()
    ports = [(free_port(), free_port()), (free_port(), free_port())]  # 2 routers: http, metrics
    serve(http.server.ThreadingHTTPServer(("127.0.0.1", api_port), FakeApi))
    workers = {}
    for p in PODS:
        name, ip = p["metadata"]["name"], p["status"]["podIP"]
        ready = p["status"]["conditions"][0]["status"] == "True"
        workers[name] = serve(http.server.ThreadingHTTPServer((ip, sd_port), worker_handler(name, ready)))
    tmp = Path(tempfile.mkdtemp())
    kubeconfig = tmp / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "fake",
        "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{api_port}"}}],
        "users": [{"name": "fake", "user": {}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": NS}}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(kubeconfig)
    log = open(tmp / "router.log", "w")
    procs = [subprocess.Popen([exe, *router_args(rendered, p, sd_port, m)], stdout=log,
                              stderr=subprocess.STDOUT, env=env) for p, m in ports]
    port, port2 = ports[0][0], ports[1][0]
    errors = []
    try:
        deadline = time.time() + 30
        while any(ask(p, "probe").startswith("error") for p, _ in ports) and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(5)  # two or more /ready health-check rounds (interval 2 s, threshold 1)

        reads = sorted(set(api_log))
        if not any("/pods watch=false" in r for r in reads) or not any("/pods watch=true" in r for r in reads):
            errors.append(f"expected a list and a watch of pods, saw {reads}")
        if any(f"/namespaces/{NS}/" not in r for r in reads):
            errors.append(f"read outside namespace {NS}: {reads}")

        sessions = [f"doc-{i}" for i in range(40)]
        first = {s: ask(port, s) for s in sessions}
        seen = collections.Counter(first.values())
        if set(seen) != {"serve-a", "serve-b"}:
            errors.append(f"sessions went to {dict(seen)}; expected only the Ready ghostline-serve pods serve-a, serve-b")
        other = {s: ask(port2, s) for s in sessions}
        if other != first:
            errors.append("the two router replicas send some sessions to different workers")
        for _ in range(2):
            again = {s: ask(port, s) for s in sessions}
            if again != first:
                errors.append("a session changed worker without any change of workers")
                break

        workers["serve-b"].RequestHandlerClass.ready_state["ready"] = False  # /ready now 503
        time.sleep(5)
        after = {s: ask(port, s) for s in sessions}
        moved = [s for s in sessions if after[s] != first[s]]
        if any(first[s] != "serve-b" for s in moved):
            errors.append("sessions of a ready worker moved when another one turned unready")
        if any(after[s] != "serve-a" for s in moved):
            errors.append("sessions of the unready worker did not all land on serve-a: "
                          f"{collections.Counter(after[s] for s in moved)}")
        if not moved:
            errors.append("serve-b answered 503 on /ready and still got its sessions")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()
    if errors:
        print((tmp / "router.log").read_text()[-3000:])
        for e in errors:
            print(f"  FAIL discovery: {e}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"  ok discovery: the router's args list and watch pods in {NS}; added only the 2 Ready app=ghostline-serve pods of 4; health on /ready; "
          f"{len(sessions)} sessions sticky ({dict(seen)}), the same on both router replicas; serve-b's /ready -> 503 moved only its "
          f"{len(moved)} sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
