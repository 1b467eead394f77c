#!/usr/bin/env python3
"""Scale-out benchmark: several people typing at once against N ghostline-serve replicas behind
vllm-router, with affinity routing (consistent hash on the LSP's X-Session-ID) or round robin.

    python tests/eval/scale_bench.py                          # N=1, N=3 affinity, N=3 round robin
    python tests/eval/scale_bench.py --users 6 --configs 1:consistent_hash,3:consistent_hash

Each configuration starts inference-backend/scripts/replicas.py (what `GHOSTLINE_REPLICAS=N
./run.sh` starts) with the default model, every replica on --threads threads, then replays the
same typing sessions in all of them: --users simulated people, each with their own ghostline-lsp
(LSP defaults, backendUrl = the router) in one of the pinned evaluation packages, each typing
--positions lines exactly as tests/eval/typing_bench.py does (open a file, think, type a burst
of characters one by one, pause for the suggestion, read, type on, close), all at the same time.
The LSP runs with one fixed prompt size (FIXED_SETTINGS below), so every configuration is sent
the same prompts.

Per configuration, summed over the replicas' /metrics: the prefix-cache hit ratio (prompt tokens
served from the cache / prompt tokens, and requests that reused a prefix / requests), prompt
tokens actually computed, the backend's mean time to first token; from the people's side the
pause → suggestion latency (first pause in a file, and follow-up pauses on the same line), and
throughput (suggestions and generated tokens per second of the run). With --kill, one more run:
N=3 affinity where one replica is SIGKILLed halfway, counting per document the pauses that got
no answer or an empty one after the kill.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import packages as pkgs  # noqa: E402
import typing_bench as tb  # noqa: E402
from lsp import CACHE, binary, ort_library  # noqa: E402

# The replicas' counters are read once before and once after a run; per-pause readings (what
# typing_bench does against one server) would read the router, which has none of them.
tb.metric = lambda url, name: 0.0

DEFAULT_MODEL = tb.DEFAULT_MODEL

# The same prompts in every configuration, so that the hit ratios compare routing and nothing
# else: with the defaults the LSP sizes its prompts to the backend's measured speed and warms
# larger ones in the background, and a less loaded configuration would be sent other prompts.
# One size (512 tokens, a target it always meets, so no background warm-ups of larger tiers),
# and a timeout long enough that a loaded configuration answers late rather than not at all.
FIXED_SETTINGS = {"contextTokens": 512, "latencyTargetMs": 60000, "timeoutMs": 30000}


def scrape(url: str) -> dict[str, float]:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


COUNTERS = ["ghostline_prompt_tokens_total", "ghostline_prefix_cache_reused_tokens_total",
            "ghostline_prefix_cache_hits_total", "ghostline_prefix_cache_misses_total",
            "ghostline_prefilled_tokens_total", "ghostline_generated_tokens_total",
            "ghostline_time_to_first_token_seconds_sum", "ghostline_time_to_first_token_seconds_count"]


def totals(replicas: list[str]) -> dict[str, float]:
    sums = {name: 0.0 for name in COUNTERS}
    for url in replicas:
        try:
            values = scrape(url)
        except Exception:
            continue  # a killed replica: its counters are gone with it
        for name in COUNTERS:
            sums[name] += values.get(name, 0.0)
    return sums


class Cluster:
    def __init__(self, replicas: int, policy: str, port: int, model: Path, threads: int, serve: Path, work: Path):
        self.state_file = work / f"state-{replicas}-{policy}.json"
        self.state_file.unlink(missing_ok=True)
        env = dict(os.environ, GHOSTLINE_LOG="warn")
        if ort_library():
            env.setdefault("ORT_DYLIB_PATH", ort_library())
        self.log = open(work / f"replicas-{replicas}-{policy}.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "inference-backend/scripts/replicas.py"), "--replicas", str(replicas),
             "--policy", policy, "--port", str(port), "--model", str(model), "--threads", str(threads),
             "--serve-bin", str(serve), "--state", str(self.state_file), "--", "--device", "cpu"],
            env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 600
        while not self.state_file.exists():
            if self.process.poll() is not None:
                raise SystemExit(f"replicas.py exited with {self.process.returncode}; see {self.log.name}")
            if time.monotonic() > deadline:
                raise SystemExit("replicas not ready after 600 s")
            time.sleep(0.5)
        time.sleep(0.2)
        self.state = json.loads(self.state_file.read_text())
        self.router = self.state["router"]["url"]
        self.replicas = [r["url"] for r in self.state["replicas"]]

    def kill_replica(self, index: int) -> None:
        os.kill(self.state["replicas"][index]["pid"], signal.SIGKILL)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def sessions(packages: list[pkgs.Package], roots: dict, users: int, positions: int, seed: int, args) -> list[tuple]:
    """Per simulated user: (package, its positions); the same for every configuration."""
    out = []
    for user in range(users):
        package = packages[user % len(packages)]
        picked = tb.pick_positions([package], roots, positions, seed * 1000 + user, args.burst, args.bursts)
        out.append((package, picked))
    return out


def run_config(name: str, cluster: Cluster, plan: list[tuple], roots: dict, lsp_bin: Path, args, work: Path,
               kill_at: float | None = None) -> dict:
    before = totals(cluster.replicas)
    results: list[list[dict]] = [[] for _ in plan]
    errors: list[str] = []
    kill_time: list[float] = []

    def user(index: int, package, positions) -> None:
        # Users start a little apart, as people do.
        time.sleep(index * 0.3)
        settings = {"backendUrl": cluster.router, **FIXED_SETTINGS}
        client = tb.start_lsp(lsp_bin, roots[package.key], settings, work / f"lsp-{name}-{index}.log")
        try:
            for position in positions:
                started = time.monotonic()
                pauses = tb.run_position(client, roots[package.key], position, args, cluster.router)
                for p in pauses:
                    p["user"] = index
                    p["started"] = started
                results[index] += pauses
        except Exception as e:  # noqa: BLE001 - reported below, the run goes on
            errors.append(f"user {index}: {e!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=user, args=(i, p, pos)) for i, (p, pos) in enumerate(plan)]
    started = time.monotonic()
    for t in threads:
        t.start()
    if kill_at is not None:
        time.sleep(kill_at)
        cluster.kill_replica(0)
        kill_time.append(time.monotonic())
        print(f"[scale] {name}: killed replica {cluster.replicas[0]} at {kill_at:.0f} s", flush=True)
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    after = totals(cluster.replicas)
    delta = {k: after[k] - before[k] for k in COUNTERS}
    pauses = [p for r in results for p in r]
    first = [p["latency_ms"] for p in pauses if p["burst"] == 0 and p["shown"]]
    later = [p["latency_ms"] for p in pauses if p["burst"] > 0 and p["shown"]]
    lookups = delta["ghostline_prefix_cache_hits_total"] + delta["ghostline_prefix_cache_misses_total"]
    summary = {
        "config": name, "pauses": len(pauses), "errors": errors, "wall_s": wall,
        "shown": sum(p["shown"] for p in pauses) / len(pauses) if pauses else 0.0,
        "token_hit_ratio": delta["ghostline_prefix_cache_reused_tokens_total"] / max(1.0, delta["ghostline_prompt_tokens_total"]),
        "request_hit_ratio": delta["ghostline_prefix_cache_hits_total"] / max(1.0, lookups),
        "backend_requests": lookups,
        "prompt_tokens": delta["ghostline_prompt_tokens_total"],
        "prefilled_tokens": delta["ghostline_prefilled_tokens_total"],
        "backend_ttft_mean_ms": 1000 * delta["ghostline_time_to_first_token_seconds_sum"] / max(1.0, delta["ghostline_time_to_first_token_seconds_count"]),
        "first_p50_ms": tb.pct(first, 0.5), "first_p90_ms": tb.pct(first, 0.9),
        "followup_p50_ms": tb.pct(later, 0.5), "followup_p90_ms": tb.pct(later, 0.9),
        "suggestions_per_s": sum(p["shown"] for p in pauses) / wall,
        "generated_tokens_per_s": delta["ghostline_generated_tokens_total"] / wall,
    }
    if kill_time:
        # Per document (user, file): pauses that ended after the kill and got nothing.
        per_document: dict[tuple, list[bool]] = {}
        for p in pauses:
            if p["at"] >= kill_time[0]:
                per_document.setdefault((p["user"], p["file"]), []).append(p["shown"])
        summary["after_kill_documents"] = len(per_document)
        summary["after_kill_empty_max_per_document"] = max((shown.count(False) for shown in per_document.values()), default=0)
        summary["after_kill_empty_total"] = sum(shown.count(False) for shown in per_document.values())
        summary["after_kill_pauses"] = sum(len(v) for v in per_document.values())
    summary["_pauses"] = pauses
    return summary


def table(rows: list[dict]) -> str:
    f = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
    out = ["| configuration | pauses | with a suggestion | prefix-cache hit ratio (tokens) | (requests) | prompt tokens computed | backend TTFT mean | first pause p50 / p90 | follow-up pause p50 / p90 | suggestions/s | generated tokens/s |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['config']} | {r['pauses']} | {f(100 * r['shown'], '.0f')}% | {f(100 * r['token_hit_ratio'], '.1f')}% | "
                   f"{f(100 * r['request_hit_ratio'], '.0f')}% | {f(r['prefilled_tokens'], ',.0f')} | {f(r['backend_ttft_mean_ms'], '.0f')} ms | "
                   f"{f(r['first_p50_ms'], '.0f')} / {f(r['first_p90_ms'], '.0f')} ms | {f(r['followup_p50_ms'], '.0f')} / {f(r['followup_p90_ms'], '.0f')} ms | "
                   f"{f(r['suggestions_per_s'], '.2f')} | {f(r['generated_tokens_per_s'], '.1f')} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default="1:consistent_hash,3:consistent_hash,3:round_robin",
                    help="comma-separated N:policy (vllm-router policies)")
    ap.add_argument("--users", type=int, default=6)
    ap.add_argument("--positions", type=int, default=3, help="lines typed per user")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="per replica")
    ap.add_argument("--kill", action="store_true", help="also run N=3 affinity with one replica killed halfway")
    ap.add_argument("--port", type=int, default=18500)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--char-ms", type=float, default=90)
    ap.add_argument("--burst", type=int, default=4)
    ap.add_argument("--bursts", type=int, default=2)
    ap.add_argument("--think-ms", type=float, default=1000)
    ap.add_argument("--read-ms", type=float, default=1500)
    ap.add_argument("--wait-s", type=float, default=30)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / f"scale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    args = ap.parse_args()

    packages = pkgs.load()
    roots = {p.key: pkgs.fetch(p) for p in packages}
    lsp_bin = binary("ghostline-lsp", "lsp-server", "GHOSTLINE_LSP_BIN", not args.no_build)
    serve_bin = binary("ghostline-serve", "inference-backend", "GHOSTLINE_SERVE_BIN", not args.no_build)
    work = Path(tempfile.mkdtemp(prefix="ghostline-scale-"))
    plan = sessions(packages, roots, args.users, args.positions, args.seed, args)
    configs = [(int(n), policy) for n, policy in (c.split(":") for c in args.configs.split(","))]
    runs = [(n, policy, None) for n, policy in configs]
    if args.kill:
        runs.append((3, "consistent_hash", "kill"))
    load_before = os.getloadavg()
    rows = []
    for n, policy, kill in runs:
        name = f"N={n} {'affinity' if policy == 'consistent_hash' else policy.replace('_', '-')}" + (", 1 killed halfway" if kill else "")
        print(f"[scale] {name}: starting {n} replicas", flush=True)
        cluster = Cluster(n, policy, args.port, args.model, args.threads, serve_bin, work)
        try:
            # Halfway through a run: a run takes about positions × (think + bursts × (typing + read)).
            per_position = (args.think_ms + args.bursts * (args.burst * args.char_ms + args.read_ms)) / 1000
            kill_at = args.positions * per_position / 2 if kill else None
            row = run_config(name, cluster, plan, roots, lsp_bin, args, work, kill_at)
        finally:
            cluster.stop()
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
        if row["errors"]:
            print(f"[scale] errors: {row['errors']}", flush=True)
    print()
    print(table(rows))
    for r in rows:
        if "after_kill_documents" in r:
            print(f"{r['config']}: {r['after_kill_pauses']} pauses in {r['after_kill_documents']} documents after the kill; "
                  f"empty answers {r['after_kill_empty_total']}, at most {r['after_kill_empty_max_per_document']} in one document")
    load_after = os.getloadavg()
    print(f"{os.cpu_count()} cores, {args.threads} thread(s) per replica; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}; "
          f"{args.users} users × {args.positions} lines, seed {args.seed}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": {"users": args.users, "positions": args.positions, "seed": args.seed,
                                             "threads": args.threads, "load_before": load_before, "load_after": load_after},
                                    "runs": rows}, indent=1, default=str))
    print(f"[scale] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
