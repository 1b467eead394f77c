#!/usr/bin/env python3
"""Context-engine evaluation: fill-in-the-middle cases cut from real, pinned packages
(packages.toml), completed through the real ghostline-lsp (textDocument/inlineCompletion) and
ghostline-serve, once per `contextMode`, scored by exact match, edit similarity and identifier F1.

    python tests/eval/run.py --cases 16 --modes currentFile,full,jaccard --context-tokens 1024
    python tests/eval/run.py --smoke        # tiny random model, 2 cases per kind: pipeline check

For every case and mode: the package is copied into a temporary workspace with the hole cut out
of the file ON DISK as well, a fresh ghostline-lsp starts with that workspace as its root, its
index is awaited (`ghostline.indexStatus`), the holed file and up to three neighbours are opened,
and one inline completion is asked for at the hole (`restN`: asked, N seconds of rest, asked
again and scored on the second answer; `defaults` and `restN` run at the LSP's own pacing, each
on its own prefix-cached ghostline-serve; README.md). Exit status: 1 when any case hit a pipeline
failure (LSP error, no answer, malformed item, backend warning, bad sha256), else 0.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import baselines  # noqa: E402
import cases as case_builder  # noqa: E402
import metrics  # noqa: E402
import stats  # noqa: E402
import packages as pkgs  # noqa: E402
import recorder as prompt_recorder  # noqa: E402
from lsp import CACHE, ROOT, Backend, LspClient, PipelineError, binary  # noqa: E402

MODES = ("currentFile", "full", "jaccard")
# Built here and sent straight to ghostline-serve (baselines.py): what every mode is judged against.
BASELINES = ("plain", "naive", "naive-full")
# The same baseline prompts sent to --reference-url (another runtime on the same GGUF, e.g.
# llama_ref.py): scored beside the references, so "plain-ref − plain" compares the runtimes.
REFERENCE_RUNS = ("plain-ref", "naive-ref", "naive-full-ref")
# ghostline-lsp at its own default pacing (no latencyTargetMs / timeoutMs), each on its own
# prefix-cached ghostline-serve: `defaults` asks once; `restN` asks, waits N seconds, asks again
# at the same place and is scored on the second answer.
REST = re.compile(r"rest(\d+(?:\.\d+)?)")
DEFAULT_PACING_TIMEOUT_MS = 5000  # the LSP's own timeoutMs default (settings.rs)
DEFAULT_MODEL = Path(os.environ.get("GHOSTLINE_DEFAULT_MODEL", CACHE / "models" / "qwen2.5-coder-0.5b-instruct-q4km-cpu"))
TINY_MODEL = Path(os.environ.get("GHOSTLINE_TINY_GENAI", CACHE / "models" / "tiny-qwen2-genai"))
INDEX_TIMEOUT_S = 120


def paced_system(name: str) -> tuple[bool, float | None]:
    """(whether `name` runs at the LSP's default pacing, the seconds `restN` waits before its
    second ask: None for `defaults`, which asks once)."""
    if name == "defaults":
        return True, None
    match = REST.fullmatch(name)
    return (True, float(match.group(1))) if match else (False, None)


def position_to_offset(text: str, line: int, character: int) -> int:
    """LSP position (UTF-16 code units) → offset in `text` (code points); clamps like the LSP."""
    lines = text.split("\n")
    line = min(line, len(lines) - 1)
    start = sum(len(l) + 1 for l in lines[:line])
    units = 0
    for i, ch in enumerate(lines[line]):
        if units >= character:
            return start + i
        units += 2 if ord(ch) > 0xFFFF else 1
    return start + len(lines[line])


def utf16_position(text: str, offset: int) -> dict:
    before = text[:offset]
    line = before.count("\n")
    column = before[before.rfind("\n") + 1 :]
    return {"line": line, "character": case_builder.utf16_len(column)}


def predicted_middle(holed: str, cursor: int, item: dict) -> str:
    """Applies the item as an editor would and returns what ended up in the hole."""
    insert = item.get("insertText")
    if isinstance(insert, dict):  # StringValue (snippet)
        insert = insert.get("value")
    if not isinstance(insert, str):
        raise PipelineError(f"malformed inline completion item: {item!r}")
    if item.get("range"):
        r = item["range"]
        try:
            start = position_to_offset(holed, r["start"]["line"], r["start"]["character"])
            end = position_to_offset(holed, r["end"]["line"], r["end"]["character"])
        except (KeyError, TypeError):
            raise PipelineError(f"malformed range in item: {item!r}")
        if start > cursor or end < cursor:
            raise PipelineError(f"item range {r} does not contain the cursor")
    else:
        start = end = cursor
    new = holed[:start] + insert + holed[end:]
    prefix, suffix = holed[:cursor], holed[cursor:]
    if new.startswith(prefix) and new.endswith(suffix) and len(new) >= len(prefix) + len(suffix):
        return new[len(prefix) : len(new) - len(suffix)]
    # The item replaced part of the text after the cursor: the middle is what now stands
    # between the prefix and the unchanged end of the suffix.
    tail = holed[end:]
    return new[len(prefix) : len(new) - len(tail)] if new.startswith(prefix) else insert


def language_id(language: str) -> str:
    return {"rust": "rust", "python": "python", "go": "go"}[language]


def wait_for_index(client: LspClient) -> dict:
    """Polls ghostline.indexStatus until the index and the token counter are ready; a binary
    without the command counts as ready."""
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    while True:
        response = client.request(
            "workspace/executeCommand", {"command": "ghostline.indexStatus", "arguments": []}, timeout=30
        )
        if "error" in response:
            error = response["error"]
            if "unknown command" in str(error.get("message", "")).lower() or error.get("code") == -32601:
                return {"ready": True, "legacy": True}
            raise PipelineError(f"ghostline.indexStatus failed: {error}")
        status = response.get("result") or {}
        if not isinstance(status, dict) or "ready" not in status:
            raise PipelineError(f"malformed ghostline.indexStatus answer: {status!r}")
        # tokenizerReady: until the LSP's token counter has loaded it estimates budgets, and
        # the first prompt of a fresh process came out different between two runs.
        if status["ready"] and status.get("tokenizerReady", True):
            return status
        if time.monotonic() > deadline:
            raise PipelineError(f"index not ready after {INDEX_TIMEOUT_S} s: {status}")
        time.sleep(0.1)


def run_case(lsp_bin: Path, workspace: Path, case: case_builder.Case, settings: dict, log: Path,
             rest_s: float | None = None) -> dict:
    """One case through a fresh ghostline-lsp. With `rest_s`, the first answer goes to
    row["first"], the LSP is left alone `rest_s` seconds, the same inlineCompletion is sent again
    (nothing typed) and the row is scored on that second answer."""
    path = workspace / case.path
    original = path.read_text(encoding="utf-8")
    holed = case.holed(original)
    cursor = case_builder.offset_of(original, case.line, case.column)
    row = {"id": case.id, "kind": case.kind, "package": case.package, "mode": settings["contextMode"]}
    path.write_text(holed, encoding="utf-8")  # the index must not read the answer from disk
    client = None
    try:
        client = LspClient(lsp_bin, log, settings)
        root_uri = workspace.as_uri()
        client.call(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root_uri,
                "workspaceFolders": [{"uri": root_uri, "name": workspace.name}],
                "capabilities": {
                    "general": {"positionEncodings": ["utf-16"]},
                    "textDocument": {"inlineCompletion": {"dynamicRegistration": False}},
                    "workspace": {
                        "workspaceFolders": True,
                        "configuration": True,
                        "didChangeWatchedFiles": {"dynamicRegistration": True},
                    },
                },
                "initializationOptions": settings,
            },
        )
        client.notify("initialized", {})
        row["index"] = wait_for_index(client)
        # neighbours first, the holed file last (the one being edited)
        for rel in case.open_files:
            text = (workspace / rel).read_text(encoding="utf-8")
            client.notify("textDocument/didOpen", {"textDocument": {
                "uri": (workspace / rel).as_uri(), "languageId": language_id(case.language), "version": 1, "text": text}})
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": path.as_uri(), "languageId": language_id(case.language), "version": 1, "text": holed}})
        wait_for_index(client)
        position = utf16_position(holed, cursor)
        assert position == {"line": case.line, "character": case.column_utf16}, (position, case)

        def ask() -> tuple[str, int, float]:
            """One inlineCompletion at the hole: (predicted middle, items, latency in ms)."""
            started = time.monotonic()
            response = client.request(
                "textDocument/inlineCompletion",
                {"textDocument": {"uri": path.as_uri()}, "position": position, "context": {"triggerKind": 2}},
                timeout=settings.get("timeoutMs", DEFAULT_PACING_TIMEOUT_MS) / 1000 + 60,
            )
            latency = (time.monotonic() - started) * 1000
            if "error" in response:
                raise PipelineError(f"inlineCompletion failed: {response['error']}")
            result = response.get("result")
            items = result.get("items") if isinstance(result, dict) else result
            if result is not None and not isinstance(items, list):
                raise PipelineError(f"malformed inlineCompletion answer: {result!r}")
            items = items or []
            return (predicted_middle(holed, cursor, items[0]) if items else ""), len(items), latency

        if rest_s is not None:
            prediction, count, latency = ask()
            row["first"] = {"prediction": prediction, "items": count, "latency_ms": latency,
                            **metrics.score(prediction, case.middle)}
            row["rest_s"] = rest_s
            time.sleep(rest_s)
        prediction, count, row["latency_ms"] = ask()
        warnings = [
            n["params"].get("message") for n in client.notifications
            if n.get("method") == "window/showMessage" and (n.get("params") or {}).get("type") in (1, 2)
        ]
        if warnings:
            raise PipelineError("ghostline-lsp warned: " + " | ".join(map(str, warnings)))
        row["prediction"] = prediction
        row["items"] = count
    except (PipelineError, OSError, AssertionError) as e:
        row["error"] = str(e)
        row.setdefault("prediction", "")
    finally:
        if client:
            client.close()
        path.write_text(original, encoding="utf-8")
    row.update(metrics.score(row["prediction"], case.middle))
    return row


def prompt_tokens_total(url: str) -> float | None:
    """ghostline-serve's prompt-token counter (None for a backend without it)."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            text = response.read().decode()
    except (OSError, ValueError):
        return None
    for line in text.splitlines():
        if line.startswith("ghostline_prompt_tokens_total "):
            return float(line.split()[1])
    return None


def run_baseline(system: str, url: str, model_id: str, tokens: baselines.Tokens, workspace: Path,
                 case: case_builder.Case, budget: int, max_tokens: int, extension: str) -> dict:
    """One baseline completion: its prompt built here from the holed file (on disk too, as for
    the LSP, so the windows cannot show the answer), sent to the backend, cut by `baselines.cut`."""
    path = workspace / case.path
    original = path.read_text(encoding="utf-8")
    holed = case.holed(original)
    cursor = case_builder.offset_of(original, case.line, case.column)
    row = {"id": case.id, "kind": case.kind, "package": case.package, "language": case.language, "mode": system}
    path.write_text(holed, encoding="utf-8")
    try:
        if system == "plain":
            prompt = baselines.plain_prompt(tokens, holed, cursor, budget)
        elif system == "naive-full":  # fixed budgets (issue 28), not --context-tokens
            prompt = baselines.naive_full_prompt(tokens, workspace, case.path, extension, holed, cursor)
        else:
            prompt = baselines.naive_prompt(tokens, workspace, case.path, extension, holed, cursor, budget)
        started = time.monotonic()
        answer = baselines.complete(url, model_id, prompt, max_tokens)
        row["latency_ms"] = (time.monotonic() - started) * 1000
        row["raw"] = answer["text"]
        row["prompt_tokens"] = answer["usage"].get("prompt_tokens")
        row["prediction"] = baselines.cut(answer["text"], holed, cursor)
    except (OSError, ValueError, KeyError, IndexError) as e:
        row["error"] = f"{system}: {e}"
        row.setdefault("prediction", "")
    finally:
        path.write_text(original, encoding="utf-8")
    row.update(metrics.score(row["prediction"], case.middle))
    return row


def model_id_of(url: str) -> str:
    with urllib.request.urlopen(f"{url}/v1/models", timeout=30) as response:
        return json.load(response)["data"][0]["id"]


def paired_table(rows: list[dict], systems: list[str], references: list[str], groups: list[tuple[str, callable]]) -> str:
    """Each system minus each reference, on the same cases: exact match and edit similarity in
    points, with 95% bootstrap intervals."""
    lines = [
        "| system − reference | group | n | Δ EM (pts) [95% CI] | Δ edit sim (pts) [95% CI] |",
        "|---|---|---:|---|---|",
    ]
    by = {(r["mode"], r["id"]): r for r in rows}
    for system in systems:
        for reference in references:
            if system == reference:
                continue
            for name, keep in groups:
                ids = sorted({r["id"] for r in rows if r["mode"] == system and keep(r) and (reference, r["id"]) in by})
                if not ids:
                    continue
                em = stats.paired([by[(system, i)]["em"] for i in ids], [by[(reference, i)]["em"] for i in ids])
                es = stats.paired([by[(system, i)]["es"] for i in ids], [by[(reference, i)]["es"] for i in ids])
                lines.append(f"| {system} − {reference} | {name} | {len(ids)} | {stats.describe(em)} | {stats.describe(es)} |")
    return "\n".join(lines)


def record_prompt(recorder, case: case_builder.Case, row: dict, path: Path) -> None:
    """What the stand-in backend was sent for this case: size, and whether it carries the
    definition a cross-file case needs, or the middle itself (verbatim, when 12+ chars)."""
    requests = recorder.take()
    if len(requests) != 1 and not row.get("error"):
        row["error"] = f"expected one backend request, saw {len(requests)}"
    prompt = prompt_recorder.prompt_text(requests[-1]) if requests else ""
    row["prompt_chars"] = len(prompt)
    if case.identifier:
        row["prompt_has_definition"] = prompt_recorder.has_definition(prompt, case.identifier, case.language)
    middle = metrics.normalize(case.middle).strip()
    row["prompt_has_middle"] = len(middle) >= 12 and middle in prompt
    with open(path, "a") as f:
        f.write(json.dumps({"id": case.id, "mode": row["mode"], "request": requests[-1] if requests else None}) + "\n")


def retrieval_table(rows: list[dict], modes: list[str]) -> str:
    lines = [
        "| mode | kind | n | mean prompt chars | needed definition in prompt | middle verbatim in prompt |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode in modes:
        for kind in (*case_builder.KINDS, "overall"):
            sel = [r for r in rows if r["mode"] == mode and (kind == "overall" or r["kind"] == kind)]
            if not sel:
                continue
            defs = [r["prompt_has_definition"] for r in sel if "prompt_has_definition" in r]
            lines.append(
                f"| {mode} | {kind} | {len(sel)} | {sum(r.get('prompt_chars', 0) for r in sel) / len(sel):.0f} | "
                f"{f'{sum(defs)}/{len(defs)}' if defs else '–'} | {sum(r.get('prompt_has_middle', False) for r in sel)}/{len(sel)} |"
            )
    return "\n".join(lines)


def git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except Exception:
        return ""


def report_row(case: case_builder.Case, mode: str, row: dict) -> None:
    status = "ERROR " + row["error"] if row.get("error") else f"em={row['em']:.0f} es={row['es']:.2f}"
    first = row.get("first")
    if first and not row.get("error"):  # restN: the second ask is scored, the first shown beside it
        changed = "changed" if first["prediction"] != row["prediction"] else "same"
        status += f"  (first ask {first['latency_ms']:.0f} ms em={first['em']:.0f} es={first['es']:.2f}, {changed})"
    print(f"[eval] {case.id:<34} {mode:<12} {row.get('latency_ms', 0):7.0f} ms  {status}", flush=True)


def fmt(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


def groups(rows: list[dict]) -> list[tuple[str, callable]]:
    """The groups every table reports: each kind, each language, and all cases."""
    out = [(kind, lambda r, k=kind: r["kind"] == k) for kind in case_builder.KINDS]
    for language in sorted({r.get("language") for r in rows if r.get("language")}):
        out.append((language, lambda r, l=language: r.get("language") == l))
    out.append(("overall", lambda r: True))
    return out


def table(summary: dict, modes: list[str]) -> str:
    lines = [
        "| system | group | n | EM | edit sim | ident F1 | mean latency (ms) | mean prompt tokens | empty | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in modes:
        for group, a in summary[mode].items():
            lines.append(
                f"| {mode} | {group} | {a['n']} | {fmt(a['em'])} | {fmt(a['es'])} | {fmt(a['id_f1'])} | "
                f"{fmt(a['latency_ms'], 0)} | {fmt(a.get('prompt_tokens'), 0)} | {a['empty']} | {a['errors']} |"
            )
    return "\n".join(lines)


def targets(rows: list[dict], modes: list[str]) -> list[str]:
    """The bars, checked on the point estimate (the interval beside it). Issue 14, for every
    ghostline-lsp system: beat plain on single-line and multi-line exact match and edit
    similarity; beat naive overall and on cross-file holes. Issue 28: each system − naive-full at
    least 0 EM points on cross-file holes and at least +3 on all cases; each restN at least 90% of
    full's EM and ES over all cases (each kind's share beside it)."""
    out = []
    by = {(r["mode"], r["id"]): r for r in rows}

    def paired(mode: str, reference: str, group: str, metric: str) -> dict:
        ids = sorted({r["id"] for r in rows if r["mode"] == mode and (group == "overall" or r["kind"] == group)
                      and (reference, r["id"]) in by})
        return stats.paired([by[(mode, i)][metric] for i in ids], [by[(reference, i)][metric] for i in ids])

    checks = [("plain", "single-line"), ("plain", "multi-line"), ("naive", "overall"), ("naive", "cross-file")]
    systems = [m for m in modes if m not in BASELINES and m not in REFERENCE_RUNS]
    for mode in [m for m in modes if m not in BASELINES]:
        for reference, group in checks:
            if reference not in modes:
                continue
            for metric in ("em", "es"):
                d = paired(mode, reference, group, metric)
                verdict = "beats" if d["diff"] is not None and d["diff"] > 0 else "does NOT beat"
                out.append(f"- {mode} {verdict} {reference} on {group} {metric.upper()}: {stats.describe(d)} points (n={d['n']})")
    if "naive-full" in modes:
        for mode in systems:
            cross, overall = paired(mode, "naive-full", "cross-file", "em"), paired(mode, "naive-full", "overall", "em")
            met = (cross["diff"] is not None and cross["diff"] >= 0 and overall["diff"] is not None
                   and overall["diff"] >= 0.03 - 1e-9)
            out.append(f"- issue 28: {mode} − naive-full cross-file EM ≥ 0 and all EM ≥ +3: "
                       f"{'met' if met else 'NOT met'} (cross-file {stats.describe(cross)} points, n={cross['n']}; "
                       f"all {stats.describe(overall)} points, n={overall['n']})")
    if "full" in modes:
        for mode in [m for m in modes if paced_system(m)[1] is not None]:
            both = [i for i in sorted({r["id"] for r in rows if r["mode"] == mode}) if ("full", i) in by]
            shares, met = [], bool(both)
            for group in (*case_builder.KINDS, "overall"):
                ids = [i for i in both if group == "overall" or by[(mode, i)]["kind"] == group]
                if not ids:
                    continue
                parts = []
                for metric in ("em", "es"):
                    rest = sum(by[(mode, i)][metric] for i in ids) / len(ids)
                    full = sum(by[("full", i)][metric] for i in ids) / len(ids)
                    if group == "overall":
                        met = met and rest >= 0.9 * full
                    parts.append(f"{metric.upper()} {rest:.3f}/{full:.3f}" + (f" = {rest / full:.0%}" if full else ""))
                shares.append(f"{group} (n={len(ids)}) {', '.join(parts)}")
            out.append(f"- issue 28: {mode} reaches ≥ 90% of full's EM and ES (all kinds): "
                       f"{'met' if met else 'NOT met'} ({'; '.join(shares)})")
    return out


def rest_report(rows: list[dict], modes: list[str]) -> list[str]:
    """For each restN: the first ask against the second (the scored one) on the same cases."""
    out = []
    for mode in modes:
        sel = [r for r in rows if r["mode"] == mode and "first" in r]
        if not sel:
            continue
        n = len(sel)
        changed = sum(r["first"]["prediction"] != r["prediction"] for r in sel)
        mean = lambda values: sum(values) / len(values) if values else float("nan")
        out.append(
            f"- {mode}: {changed} of {n} answers changed between the first ask and the second "
            f"({sum(not r['first']['prediction'].strip() for r in sel)} → {sum(not r['prediction'].strip() for r in sel)} empty); "
            f"EM {mean([r['first']['em'] for r in sel]):.3f} → {mean([r['em'] for r in sel]):.3f}, "
            f"ES {mean([r['first']['es'] for r in sel]):.3f} → {mean([r['es'] for r in sel]):.3f}, "
            f"mean latency {mean([r['first']['latency_ms'] for r in sel]):.0f} → {mean([r['latency_ms'] for r in sel]):.0f} ms"
        )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=16, help="cases per kind (default 16)")
    ap.add_argument("--limit", type=int, default=None, help="run only the first N cases of each kind (same cases)")
    ap.add_argument("--kind-limit", action="append", default=[], metavar="KIND=N",
                    help="run only the first N cases of KIND (e.g. single-line=20 with --cases 60: 60 cross-file holes, 20 single-line)")
    ap.add_argument("--systems", "--modes", dest="systems", default="plain,naive,full",
                    help="comma-separated: the baselines plain, naive and naive-full (baselines.py), "
                         "ghostline-lsp's contextModes currentFile, full, jaccard, names given with --variant, "
                         "and at the LSP's default pacing, each on its own prefix-cached ghostline-serve: "
                         "defaults (one ask) and restN (ask, wait N seconds, ask again; scored on the second)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="an ablation: ghostline-lsp with these settings merged (contextMode defaults to full), "
                         "e.g. 'repoFormat={\"promptFamily\": \"qwen\"}'; then name it in --systems")
    ap.add_argument("--half", choices=(*pkgs.HALVES, "all"), default="all",
                    help="the packages of this half of packages.toml (held-out: score once, at the end)")
    ap.add_argument("--backend-url", help="use this ghostline-serve instead of starting one")
    ap.add_argument("--reference-url", help="where plain-ref / naive-ref send the baselines' prompts "
                                            "(another runtime on the same model, e.g. tests/eval/llama_ref.py)")
    ap.add_argument("--model", type=Path, default=None, help="model directory for the backend started here")
    ap.add_argument("--context-tokens", type=int, default=1024)
    ap.add_argument("--max-tokens", type=int, default=None, help="default 128 (16 with --smoke)")
    ap.add_argument("--timeout-ms", type=int, default=120_000)
    ap.add_argument("--threads", type=int, default=2, help="ghostline-serve --threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", default=",".join(case_builder.KINDS),
                    help="run only these kinds (the cases are the same as in a full run)")
    ap.add_argument("--packages", help="comma-separated package names (default: all in packages.toml)")
    ap.add_argument("--smoke", action="store_true", help="tiny model, 2 cases per kind, one package per language")
    ap.add_argument("--no-build", action="store_true", help="never run cargo; use the binaries as they are")
    ap.add_argument("--out-dir", type=Path, default=HERE / "results")
    ap.add_argument("--settings", type=json.loads, default={},
                    help='extra ghostline settings as JSON, merged over the defaults, e.g. \'{"promptFamily": "fim"}\'')
    ap.add_argument("--record-prompts", action="store_true",
                    help="no model: a stand-in backend records each prompt; reports whether cross-file "
                         "prompts carry the needed definition (retrieval alone), prompts in results/<stamp>/")
    args = ap.parse_args()
    started = time.monotonic()

    variants = {}
    for spec in args.variant:
        name, _, settings = spec.partition("=")
        try:
            variants[name.strip()] = {"contextMode": "full", **json.loads(settings)}
        except json.JSONDecodeError as e:
            ap.error(f"--variant {spec!r}: {e}")
    modes = [m.strip() for m in args.systems.split(",") if m.strip()]
    for m in modes:
        if m not in MODES and m not in BASELINES and m not in REFERENCE_RUNS and m not in variants \
                and not paced_system(m)[0]:
            ap.error(f"unknown system {m!r} (known: {', '.join(MODES + BASELINES + REFERENCE_RUNS + tuple(variants))}, "
                     "defaults, restN)")
        if m in REFERENCE_RUNS and not args.reference_url:
            ap.error(f"{m} needs --reference-url")
    if len(set(modes)) != len(modes):
        ap.error("a system is named twice in --systems")
    paced = [m for m in modes if paced_system(m)[0] and m not in variants]
    if args.record_prompts and any(m in BASELINES for m in modes):
        ap.error("--record-prompts records ghostline-lsp's prompts only; leave the baselines out")
    if paced and (args.backend_url or args.record_prompts):
        ap.error(f"{', '.join(paced)} each need a ghostline-serve of their own with its prefix cache on, started "
                 "here (so no system warms another's cache): leave out --backend-url / --record-prompts")
    if args.smoke:
        args.cases = 2
        args.model = args.model or TINY_MODEL
        args.max_tokens = args.max_tokens or 16
    model = args.model or DEFAULT_MODEL
    max_tokens = args.max_tokens or 128

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + ("-smoke" if args.smoke else "") + (
        "-prompts" if args.record_prompts else "")
    out_dir = args.out_dir
    logs = out_dir / stamp
    logs.mkdir(parents=True, exist_ok=True)

    if args.smoke:
        import test_eval

        if test_eval.main() != 0:
            print("[eval] FAILED: self-checks (tests/eval/test_eval.py)", file=sys.stderr)
            return 1
    try:
        packages = pkgs.load()
        if args.packages:
            wanted = set(args.packages.split(","))
            packages = [p for p in packages if p.name in wanted]
        if args.smoke:
            packages = [p for p in packages if p.smoke]
        if args.half != "all":
            packages = [p for p in packages if p.half == args.half]
        if not packages:
            raise PipelineError("no packages selected")
        roots = {p.key: pkgs.fetch(p) for p in packages}
        cases = case_builder.build(packages, args.cases, args.seed)
        kinds = set(args.kinds.split(","))
        if not kinds <= set(case_builder.KINDS):
            raise PipelineError(f"unknown kinds {kinds - set(case_builder.KINDS)}")
        cases = [c for c in cases if c.kind in kinds]
        if args.limit is not None:
            cases = [c for c in cases if int(c.id.rsplit("/", 1)[1]) < args.limit]
        kind_limits = {}
        for item in args.kind_limit:
            kind, _, n = item.partition("=")
            if kind not in case_builder.KINDS or not n.isdigit():
                raise PipelineError(f"--kind-limit {item!r}: want KIND=N with KIND one of {case_builder.KINDS}")
            kind_limits[kind] = int(n)
        cases = [c for c in cases if int(c.id.rsplit("/", 1)[1]) < kind_limits.get(c.kind, len(cases) + 1)]
        case_builder.write_jsonl(cases, logs / "cases.jsonl")
        # The smoke run takes a fresh debug build (what `cargo test` leaves; built when stale), so CI need not
        # build release binaries for it; the real evaluation wants release ones.
        profiles = ("debug", "release") if args.smoke else ("release",)
        lsp_bin = binary("ghostline-lsp", "lsp-server", "GHOSTLINE_LSP_BIN", not args.no_build, profiles)
    except (pkgs.PackageError, PipelineError, subprocess.CalledProcessError) as e:
        print(f"[eval] FAILED before any case: {e}", file=sys.stderr)
        return 1

    backends: list[Backend] = []
    recorder = None
    backend_url = None
    # The systems at the LSP's default pacing: each its own ghostline-serve with the default
    # prefix cache, started once for the whole run, so one system's prompts never warm another's.
    paced_urls: dict[str, str] = {}
    if args.record_prompts:
        recorder = prompt_recorder.Recorder(model)
        backend_url = recorder.url
    elif args.backend_url:
        backend_url = args.backend_url.rstrip("/")
    else:
        try:
            serve_bin = binary("ghostline-serve", "inference-backend", "GHOSTLINE_SERVE_BIN", not args.no_build, profiles)
            if any(m not in paced for m in modes):
                # No prefix cache: every mode's latency is a cold prefill, comparable across modes.
                backends.append(Backend(serve_bin, model, args.threads, logs / "ghostline-serve.log",
                                        ["--prefix-cache-mb", "0", "--request-timeout", "300"]))
                backend_url = backends[-1].url
            for m in paced:
                backends.append(Backend(serve_bin, model, args.threads, logs / f"ghostline-serve-{m}.log",
                                        ["--request-timeout", "300"]))
                paced_urls[m] = backends[-1].url
        except (PipelineError, subprocess.CalledProcessError) as e:
            for started_backend in backends:
                started_backend.stop()
            print(f"[eval] FAILED to start ghostline-serve: {e}", file=sys.stderr)
            return 1
    model_id = model_id_of(backend_url) if any(m in BASELINES for m in modes) else None
    reference_url = args.reference_url.rstrip("/") if args.reference_url else None
    reference_id = model_id_of(reference_url) if any(m in REFERENCE_RUNS for m in modes) else None
    tokens = baselines.Tokens(model) if model_id or reference_id else None
    extensions = {p.key: p.extension for p in packages}
    print(f"[eval] {len(cases)} cases × {len(modes)} systems; backend {backend_url}"
          + "".join(f", {m} {url}" for m, url in paced_urls.items())
          + f"; model {model}; ghostline-lsp {lsp_bin}", flush=True)

    meta = {
        "timestamp": stamp,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git_head": git("rev-parse", "HEAD"),
        "lsp_last_commit": git("log", "-1", "--format=%h %s", "--", "lsp-server/src"),
        "lsp_dirty": bool(git("status", "--porcelain", "--", "lsp-server")),
        "lsp_binary": str(lsp_bin),
        "lsp_binary_mtime": datetime.fromtimestamp(lsp_bin.stat().st_mtime, timezone.utc).isoformat(),
        "backend_url": backend_url if args.backend_url else "started here",
        "paced_backends": {m: "started here, default prefix cache" for m in paced},
        "reference_url": reference_url,
        "model": str(model),
        "context_tokens": args.context_tokens,
        "settings": args.settings,
        "max_tokens": max_tokens,
        "seed": args.seed,
        "cases_per_kind": args.cases,
        "packages": [p.key for p in packages],
        "modes": modes,
        "variants": variants,
        "half": args.half,
        "limit": args.limit,
        "kind_limit": args.kind_limit,
        "smoke": args.smoke,
    }
    rows: list[dict] = []
    result_path = out_dir / f"{stamp}.json"

    def save(summary=None):
        result_path.write_text(json.dumps(
            {"meta": meta, "summary": summary, "rows": rows, "cases": [asdict(c) for c in cases]}, indent=1))

    tmp = Path(tempfile.mkdtemp(prefix="ghostline-eval-"))
    interrupted = False
    try:
        workspaces = {}
        for case in cases:
            if case.package not in workspaces:
                ws = tmp / case.package
                shutil.copytree(roots[case.package], ws, ignore=shutil.ignore_patterns(".ghostline-eval-sha256"))
                workspaces[case.package] = ws
            for mode in modes:
                url = paced_urls.get(mode, backend_url)
                before = prompt_tokens_total(url) if not recorder else None
                if mode in BASELINES or mode in REFERENCE_RUNS:
                    ref = mode in REFERENCE_RUNS
                    row = run_baseline(mode.removesuffix("-ref"), reference_url if ref else backend_url,
                                       reference_id if ref else model_id, tokens, workspaces[case.package], case,
                                       args.context_tokens, max_tokens, extensions[case.package])
                    row["mode"] = mode
                    rows.append(row)
                    report_row(case, mode, row)
                    continue
                if mode in paced:
                    # What a person gets: the LSP's own latencyTargetMs and timeoutMs (absent here).
                    settings = {
                        "backendUrl": url,
                        "contextMode": "full",
                        "contextTokens": args.context_tokens,
                        "maxTokens": max_tokens,
                        "multiline": "auto",
                        "temperature": 0.0,
                        "debounceMs": 0,
                        **args.settings,
                    }
                    row = run_case(lsp_bin, workspaces[case.package], case, settings,
                                   logs / "ghostline-lsp.stderr.log", rest_s=paced_system(mode)[1])
                    row["mode"] = mode
                    row["language"] = case.language
                    after = prompt_tokens_total(url)
                    if before is not None and after is not None:
                        row["prompt_tokens"] = after - before
                    rows.append(row)
                    report_row(case, mode, row)
                    continue
                settings = {
                    "backendUrl": backend_url,
                    "contextMode": mode,
                    "contextTokens": args.context_tokens,
                    "maxTokens": max_tokens,
                    "timeoutMs": args.timeout_ms,
                    # Quality only: the whole contextTokens budget, as on a fast backend (on a
                    # slow one the LSP starts smaller and grows as the cache warms; the typing
                    # benchmark measures that).
                    "latencyTargetMs": args.timeout_ms,
                    "multiline": "auto",
                    "temperature": 0.0,
                    "debounceMs": 0,
                    **args.settings,
                    **({"contextMode": mode} if mode in MODES else variants[mode]),
                }
                row = run_case(lsp_bin, workspaces[case.package], case, settings, logs / "ghostline-lsp.stderr.log")
                row["mode"] = mode
                row["language"] = case.language
                if recorder:
                    record_prompt(recorder, case, row, logs / "prompts.jsonl")
                else:
                    after = prompt_tokens_total(backend_url)
                    if before is not None and after is not None:
                        # Every prompt the LSP sent for this case (warm-ups included).
                        row["prompt_tokens"] = after - before
                rows.append(row)
                report_row(case, mode, row)
            save()
    except KeyboardInterrupt:
        interrupted = True  # summarise what was measured, then fail
        meta["interrupted"] = True
        print("[eval] interrupted: summarising the completions so far", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        for started_backend in backends:
            started_backend.stop()
        if recorder:
            recorder.stop()

    summary = {}
    # after an interruption, only cases every system finished, so the systems stay comparable
    done = {r["id"] for r in rows if sum(q["id"] == r["id"] for q in rows) == len(modes)}
    complete_rows = [r for r in rows if r["id"] in done]
    for mode in modes:
        summary[mode] = {}
        for group, keep in groups(complete_rows):
            selected = [r for r in complete_rows if r["mode"] == mode and keep(r)]
            summary[mode][group] = metrics.aggregate(selected)
    save(summary)
    elapsed = time.monotonic() - started
    meta["elapsed_s"] = round(elapsed)
    save(summary)
    if recorder:
        meta["record_prompts"] = True
        save(summary)
        report = retrieval_table(rows, modes)
        (out_dir / f"{stamp}.md").write_text(f"Command: `{meta['command']}`\n\n{report}\n")
        print(f"\n{report}\n\n[eval] prompts in {logs / 'prompts.jsonl'}; {len(rows)} requests in {elapsed:.0f} s")
        return 1 if any(r.get("error") for r in rows) or interrupted else 0
    references = [m for m in BASELINES if m in modes]
    rests = rest_report(complete_rows, modes)
    paired = paired_table(complete_rows, [m for m in modes if m not in BASELINES], references,
                          groups(complete_rows)) if references else ""
    (out_dir / f"{stamp}.md").write_text(
        f"Command: `{meta['command']}`\n\n"
        f"ghostline-lsp: {meta['lsp_binary']} (last lsp-server commit `{meta['lsp_last_commit']}`"
        f"{', lsp-server dirty' if meta['lsp_dirty'] else ''}; HEAD `{meta['git_head'][:7]}`); "
        f"model {Path(meta['model']).name}; contextTokens {meta['context_tokens']}; maxTokens {meta['max_tokens']}; "
        f"{len(cases)} cases ({args.cases} per kind) from {', '.join(meta['packages'])}; seed {args.seed}; "
        f"{len(rows)} completions in {elapsed / 60:.1f} min\n\n"
        + table(summary, modes) + "\n\n" + paired + "\n\n" + "\n".join(targets(complete_rows, modes)) + "\n"
        + ("\nFirst ask → second ask (restN, scored on the second):\n\n" + "\n".join(rests) + "\n" if rests else "")
    )
    print()
    print(table(summary, modes))
    print()
    print(paired)
    print()
    for line in targets(complete_rows, modes):
        print(line)
    if rests:
        print("\nFirst ask → second ask (restN, scored on the second):")
        for line in rests:
            print(line)
    print(f"\n[eval] {len(rows)} completions in {elapsed:.0f} s; results in {result_path.relative_to(ROOT) if result_path.is_relative_to(ROOT) else result_path}")

    failures = [r for r in rows if r.get("error")]
    if failures:
        print(f"[eval] FAILED: {len(failures)} of {len(rows)} completions hit a pipeline error", file=sys.stderr)
        for r in failures[:10]:
            print(f"  {r['id']} {r['mode']}: {r['error']}", file=sys.stderr)
        return 1
    if interrupted or len(rows) != len(cases) * len(modes) or any(
        summary[m]["overall"]["em"] is None for m in modes
    ):
        print("[eval] FAILED: missing rows or metrics", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
