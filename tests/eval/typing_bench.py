#!/usr/bin/env python3
"""Typing benchmark: what a person typing in a real project sees, as a command (not a test).

    python tests/eval/typing_bench.py                       # ghostline-serve as ./run.sh starts it, LSP defaults
    python tests/eval/typing_bench.py --backend-url http://127.0.0.1:8123 --positions 12

For each position (seeded, spread round-robin over the pinned packages of packages.toml and
their files): a real code line of a real file is emptied after its indentation; the file is
opened in ghostline-lsp (one LSP per package, its root the package); after --think-ms (moving
there) the line's first characters are typed one at a time, --char-ms apart, each keystroke a
`didChange` plus a `textDocument/inlineCompletion` request (triggerKind automatic) with the
previous request cancelled (`$/cancelRequest`), as VS Code does. After --burst characters the
person pauses: the time from that last keystroke to the answer is measured, and whether it was
a suggestion, and whether the suggestion equals the real rest of the line. The person reads
for --read-ms, types the next burst of the same line and pauses again (--bursts pauses per
position), then the file is closed (each position's first pause is in a freshly opened file).

The backend's /metrics give the prompt tokens computed per keystroke
(`ghostline_prefilled_tokens_total` over a burst, divided by its keystrokes) and in the
background while reading (warm-ups). Prints a table; writes JSON to --out.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cases as case_builder  # noqa: E402
import packages as pkgs  # noqa: E402
from lsp import CACHE, Backend, LspClient, PipelineError, binary  # noqa: E402

DEFAULT_MODEL = Path(os.environ.get("GHOSTLINE_DEFAULT_MODEL", CACHE / "models" / "qwen2.5-coder-0.5b-instruct-q4km-cpu"))


def pick_positions(packages: list[pkgs.Package], roots: dict[str, Path], count: int, seed: int, burst: int, bursts: int):
    """(package, relative path, line number, indentation, line content) for `count` lines whose
    content is long enough for every burst plus something left to complete."""
    rng = random.Random(seed)
    per_package = {}
    for p in packages:
        files = sorted((roots[p.key] / p.source).rglob(f"*{p.extension}"))
        rng.shuffle(files)
        per_package[p.key] = files
    positions, seen = [], set()
    attempts = 0
    while len(positions) < count and attempts < count * 200:
        attempts += 1
        p = packages[len(positions) % len(packages)]
        files = per_package[p.key]
        if not files:
            continue
        path = rng.choice(files)
        text = path.read_text(encoding="utf-8", errors="replace")
        code, _ = case_builder.code_lines(text, p.language)
        lines = text.split("\n")
        candidates = [
            i for i, ok in enumerate(code)
            if ok and i > 20 and len(lines[i].strip()) >= burst * bursts + 6 and (path, i) not in seen
            and not lines[i].strip().startswith(("}", ")", "]", "else", "elif", "except", "finally"))
        ]
        if not candidates:
            continue
        i = rng.choice(candidates)
        seen.add((path, i))
        line = lines[i]
        indent = line[: len(line) - len(line.lstrip())]
        positions.append((p, path.relative_to(roots[p.key]).as_posix(), i, indent, line.strip()))
    return positions


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def language_id(language: str) -> str:
    return {"rust": "rust", "python": "python", "go": "go"}[language]


def start_lsp(lsp_bin: Path, root: Path, settings: dict, log: Path) -> LspClient:
    client = LspClient(lsp_bin, log, settings)
    client.call("initialize", {
        "processId": os.getpid(),
        "rootUri": root.as_uri(),
        "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
        "capabilities": {
            "general": {"positionEncodings": ["utf-16"]},
            "textDocument": {"inlineCompletion": {"dynamicRegistration": False}},
            "workspace": {"workspaceFolders": True, "configuration": True},
        },
        "initializationOptions": settings,
    })
    client.notify("initialized", {})
    return client


def inline_items(message: dict) -> list:
    result = message.get("result")
    items = result.get("items") if isinstance(result, dict) else result
    return items or []


def run_position(client: LspClient, root: Path, position, args, url: str) -> list[dict]:
    package, rel, line_no, indent, content = position
    path = root / rel
    original = path.read_text(encoding="utf-8", errors="replace")
    lines = original.split("\n")
    lines[line_no] = indent
    text = "\n".join(lines)
    uri = path.as_uri()
    version = 1
    client.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": language_id(package.language), "version": version, "text": text}})
    time.sleep(args.think_ms / 1000)
    typed = ""
    pauses = []
    pending: list[int] = []
    for burst in range(args.bursts):
        before = metric(url, "ghostline_prefilled_tokens_total")
        last_id = None
        last_sent = 0.0
        for _ in range(args.burst):
            char = content[len(typed)]
            column = len(indent) + len(typed)
            version += 1
            client.notify("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": {"start": {"line": line_no, "character": column},
                                              "end": {"line": line_no, "character": column}}, "text": char}],
            })
            typed += char
            if last_id is not None:
                client.notify("$/cancelRequest", {"id": last_id})
            last_id = client.next_id
            client.next_id += 1
            last_sent = time.monotonic()
            client.send({"jsonrpc": "2.0", "id": last_id, "method": "textDocument/inlineCompletion", "params": {
                "textDocument": {"uri": uri},
                "position": {"line": line_no, "character": case_builder.utf16_len(indent + typed)},
                "context": {"triggerKind": 2},
            }})
            pending.append(last_id)
            if len(typed) % args.burst:
                time.sleep(args.char_ms / 1000)
        # The pause: wait for the last keystroke's answer (and drain the cancelled ones).
        answer, answered_at = None, None
        deadline = time.monotonic() + args.wait_s
        while answer is None and time.monotonic() < deadline:
            try:
                message = client.incoming.get(timeout=max(0.01, deadline - time.monotonic()))
            except Exception:
                continue
            if message is None:
                raise PipelineError("ghostline-lsp exited")
            if message.get("id") == last_id:
                answer, answered_at = message, time.monotonic()
            elif message.get("id") in pending:
                continue
            else:
                client.notifications.append(message)
        pending = []
        after = metric(url, "ghostline_prefilled_tokens_total")
        items = inline_items(answer) if answer else []
        suggestion = ""
        if items:
            insert = items[0].get("insertText")
            suggestion = insert.get("value", "") if isinstance(insert, dict) else (insert or "")
        expected = content[len(typed):]
        first_line = suggestion.split("\n", 1)[0]
        pauses.append({
            "package": package.name, "file": rel, "line": line_no + 1, "burst": burst,
            "typed": typed, "expected": expected, "suggestion": suggestion,
            "answered": answer is not None and "error" not in answer,
            "shown": bool(suggestion.strip()),
            "exact": bool(suggestion.strip()) and first_line.rstrip() == expected.rstrip(),
            "latency_ms": (answered_at - last_sent) * 1000 if answered_at else None,
            "at": time.monotonic(),
            "prefilled_per_keystroke": (after - before) / args.burst,
        })
        if burst + 1 < args.bursts:
            time.sleep(args.read_ms / 1000)
            pauses[-1]["background_tokens"] = metric(url, "ghostline_prefilled_tokens_total") - after
    client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return pauses


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def summarize(pauses: list[dict]) -> dict:
    shown = [p for p in pauses if p["shown"]]
    latencies = [p["latency_ms"] for p in shown]
    return {
        "pauses": len(pauses),
        "with_suggestion": len(shown) / len(pauses) if pauses else 0.0,
        "exact": sum(p["exact"] for p in pauses) / len(pauses) if pauses else 0.0,
        "p50_ms": pct(latencies, 0.5),
        "p90_ms": pct(latencies, 0.9),
        "prefilled_per_keystroke": statistics.mean(p["prefilled_per_keystroke"] for p in pauses) if pauses else 0.0,
    }


def table(groups: dict[str, dict]) -> str:
    fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
    out = ["| pauses | n | with a suggestion | = real rest of line | last keystroke → suggestion p50 | p90 | prompt tokens computed per keystroke |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in groups.items():
        out.append(f"| {name} | {s['pauses']} | {fmt(100 * s['with_suggestion'], '.0f')}% | {fmt(100 * s['exact'], '.0f')}% | "
                   f"{fmt(s['p50_ms'], '.0f')} ms | {fmt(s['p90_ms'], '.0f')} ms | {fmt(s['prefilled_per_keystroke'], '.0f')} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--positions", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--char-ms", type=float, default=90)
    ap.add_argument("--burst", type=int, default=4, help="characters typed before each pause")
    ap.add_argument("--bursts", type=int, default=2, help="pauses per position")
    ap.add_argument("--think-ms", type=float, default=1000, help="after opening a file, before typing")
    ap.add_argument("--read-ms", type=float, default=1500, help="after a pause's answer, before typing on")
    ap.add_argument("--wait-s", type=float, default=30, help="longest wait for a pause's answer")
    ap.add_argument("--packages", help="comma-separated package names (default: all in packages.toml)")
    ap.add_argument("--backend-url", help="a running ghostline-serve (default: start one as ./run.sh does)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--settings", type=json.loads, default={}, help="LSP settings (default: none, the LSP's defaults)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", type=Path, default=HERE / "results" / f"typing-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
    args = ap.parse_args()

    packages = pkgs.load()
    if args.packages:
        wanted = set(args.packages.split(","))
        packages = [p for p in packages if p.name in wanted]
    else:
        # The four packages its figures in RESULTS.md were measured on (the same positions).
        packages = [p for p in packages if p.half == "dev" and p.language in ("rust", "python")]
    roots = {p.key: pkgs.fetch(p) for p in packages}
    lsp_bin = binary("ghostline-lsp", "lsp-server", "GHOSTLINE_LSP_BIN", not args.no_build)
    backend = None
    work = Path(tempfile.mkdtemp(prefix="ghostline-typing-"))
    if args.backend_url:
        url = args.backend_url.rstrip("/")
    else:
        serve_bin = binary("ghostline-serve", "inference-backend", "GHOSTLINE_SERVE_BIN", not args.no_build)
        # ./run.sh's defaults: every core, default flags.
        backend = Backend(serve_bin, args.model, os.cpu_count() or 2, work / "serve.log")
        url = backend.url
    settings = {"backendUrl": url, **args.settings}
    positions = pick_positions(packages, roots, args.positions, args.seed, args.burst, args.bursts)
    load_before = os.getloadavg()
    pauses: list[dict] = []
    started = time.time()
    try:
        by_package: dict[str, list] = {}
        for position in positions:
            by_package.setdefault(position[0].key, []).append(position)
        for key, group in by_package.items():
            client = start_lsp(lsp_bin, roots[key], settings, work / f"lsp-{key}.log")
            try:
                for position in group:
                    pauses += run_position(client, roots[key], position, args, url)
                    print(f"[typing] {position[0].name} {position[1]}:{position[2] + 1}: "
                          + ", ".join(f"{p['latency_ms'] or 0:.0f} ms {'=' if p['exact'] else ('shown' if p['shown'] else 'none')}" for p in pauses[-args.bursts:]),
                          flush=True)
            finally:
                client.close()
    finally:
        if backend:
            backend.stop()
    groups = {
        "all": summarize(pauses),
        "first in a freshly opened file": summarize([p for p in pauses if p["burst"] == 0]),
        "later on the same line": summarize([p for p in pauses if p["burst"] > 0]),
    }
    background = [p["background_tokens"] for p in pauses if "background_tokens" in p]
    meta = {
        "positions": len(positions), "seed": args.seed, "char_ms": args.char_ms, "burst": args.burst,
        "bursts": args.bursts, "think_ms": args.think_ms, "read_ms": args.read_ms, "settings": settings,
        "cores": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
        "minutes": (time.time() - started) / 60,
        "background_tokens_while_reading_mean": statistics.mean(background) if background else 0,
    }
    print(table(groups))
    print(f"load average before {load_before[0]:.2f}, after {meta['load_after'][0]:.2f}; "
          f"{meta['minutes']:.1f} min; prompt tokens computed in the background while reading, mean per pause: "
          f"{meta['background_tokens_while_reading_mean']:.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "summary": groups, "pauses": pauses}, indent=1))
    print(f"[typing] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
