#!/usr/bin/env python3
"""Reference latency numbers for the default model: time to first token and decode speed.

Backends, all on the same prompts (real code text, tokenized and cut to 256/1024/2048 tokens):
  genai   onnxruntime-genai's Python API on the converted model dir (fetch_default_model.py)
  llama   llama-cpp-python on the same Q4_K_M GGUF (requirements-bench.txt)
  server  optional: an OpenAI-compatible server (--server URL), streaming /v1/completions;
          --server may be repeated as LABEL=URL (e.g. server=URL1 server-nolookup=URL2) to
          compare configurations of one server in the same run

TTFT = prompt submitted -> first generated token available.  Decode tok/s = (n-1)/(t_last-t_first)
over n generated tokens (default 64, EOS ignored / min length forced).  Each backend gets a
warm-up run first; with --repeats R the backends take turns (repeat, then length, then
backend), so they share the machine's minutes, and the median of the R runs is reported.

    python bench_reference.py [--threads 2] [--lengths 256,1024,2048] [--gen 64]
                              [--server http://127.0.0.1:8080] [--json-out bench.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import fetch_default_model as fdm  # noqa: E402


def free_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ---------------------------------------------------------------- prompts
def code_corpus(min_chars: int = 400_000) -> str:
    """Concatenated Python source of an installed package (transformers' Qwen2/Llama and
    generation code, then more files), so the prompts are real code."""
    import importlib.util

    spec = importlib.util.find_spec("transformers")  # locate without importing (slow)
    if spec is not None and spec.origin:
        root = Path(spec.origin).parent
        files = sorted((root / "models" / "qwen2").glob("*.py")) + sorted((root / "models" / "llama").glob("*.py"))
        files += sorted((root / "generation").glob("*.py")) + sorted(root.glob("*.py"))
    else:  # the scripts' venv has no transformers since the GGUF-block preparation: numpy's source
        spec = importlib.util.find_spec("numpy")
        root = Path(spec.origin).parent
        files = sorted(root.rglob("*.py"))
    parts, n = [], 0
    for f in files:
        t = f.read_text(encoding="utf-8", errors="replace")
        parts.append(f"# file: {f.relative_to(root.parent)}\n{t}\n")
        n += len(t)
        if n >= min_chars:
            break
    return "".join(parts)


def make_prompts(tokenizer_json: Path, lengths: list[int], repeats: int = 1):
    """{length: [ids for each repeat]} plus a warm-up prompt, all disjoint slices of the corpus,
    so no backend (nor a server's prefix cache) can reuse a cached prefix of another prompt."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    need = sum(lengths) * repeats + 64
    chars = 400_000
    while True:
        ids = tok.encode(code_corpus(chars), add_special_tokens=False).ids
        if len(ids) >= need or chars > 20_000_000:
            break
        chars *= 2
    if len(ids) < need:
        raise SystemExit(f"code corpus too short: {len(ids)} tokens, need {need}")
    out, start = {}, 0
    for n in lengths:
        out[n] = []
        for _ in range(repeats):
            out[n].append(ids[start:start + n])
            start += n
    return out, ids[start:start + 32]


# ---------------------------------------------------------------- backends
def bench_genai(model_dir: Path, threads: int):
    import onnxruntime_genai as og

    config = og.Config(str(model_dir))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {
        "intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
    model = og.Model(config)

    def one(ids, n_new):
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + n_new, min_length=len(ids) + n_new, do_sample=False)
        g = og.Generator(model, params)
        times = []
        t0 = time.perf_counter()
        g.append_tokens(ids)
        while not g.is_done():
            g.generate_next_token()
            g.get_next_tokens()
            times.append(time.perf_counter())
        return t0, times

    return one


def bench_llama(gguf: Path, threads: int, n_ctx: int):
    # llama.cpp's OpenMP threads spin-wait by default; on a machine whose cores are also busy with
    # other work that made decoding 5x slower here (2 tok/s instead of 10+). --omp-wait-policy
    # (default PASSIVE) sets OMP_WAIT_POLICY before libgomp loads, unless it is already set.
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                n_batch=512, verbose=False)

    def one(ids, n_new):
        llm.reset()  # no prefix reuse between runs
        times = []
        t0 = time.perf_counter()
        for _tok in llm.generate(ids, temp=0.0, top_k=1, reset=True):  # never stops at EOS itself
            times.append(time.perf_counter())
            if len(times) >= n_new:
                break
        return t0, times

    return one


def text_chunk_times(response) -> list[float]:
    """Reads an OpenAI-style SSE completion stream; returns when each chunk with text arrived."""
    if response.status != 200:
        raise SystemExit(f"server answered {response.status}: {response.read()[:500]!r}")
    times = []
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            break
        if any(ch.get("text") for ch in json.loads(payload).get("choices", [])):
            times.append(time.perf_counter())
    return times


def bench_server(url: str, model_name: str | None, tokenizer_json: Path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    u = urllib.parse.urlsplit(url)
    base = u.path.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"

    def conn():
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        return cls(u.hostname, u.port or (443 if u.scheme == "https" else 80), timeout=600)

    headers = {"Content-Type": "application/json"}
    if os.environ.get("GHOSTLINE_API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["GHOSTLINE_API_KEY"]
    if model_name is None:
        c = conn()
        c.request("GET", base + "/models", headers=headers)
        r = c.getresponse()
        data = json.loads(r.read() or b"{}")
        model_name = (data.get("data") or [{}])[0].get("id", "default")

    def one(ids, n_new):
        body = json.dumps({"model": model_name, "prompt": tok.decode(ids, skip_special_tokens=False),
                           "max_tokens": n_new, "temperature": 0, "stream": True, "ignore_eos": True})
        c = conn()
        t0 = time.perf_counter()
        c.request("POST", base + "/completions", body=body, headers=headers)
        times = text_chunk_times(c.getresponse())
        c.close()
        return t0, times

    return one


def run_backends(runners: dict, prompts, gen: int, repeats: int) -> dict:
    """Interleaved: for each repeat and prompt length, every backend in turn, so all of them see
    the same minutes of this (shared, noisy) machine; the medians over repeats are reported."""
    prompts, warm = prompts
    for one in runners.values():
        one(warm, 4)
    samples = {name: {n: ([], [], []) for n in prompts} for name in runners}
    for r in range(repeats):
        for n, variants in prompts.items():
            for name, one in runners.items():
                t0, times = one(variants[r], gen)
                if not times:
                    raise SystemExit(f"{name}: no token generated for the {n}-token prompt")
                ttfts, rates, counts = samples[name][n]
                ttfts.append(times[0] - t0)
                counts.append(len(times))
                if len(times) > 1:
                    rates.append((len(times) - 1) / (times[-1] - times[0]))
                print(f"[bench] {name:6s} prompt {n:5d} #{r + 1}: TTFT {ttfts[-1]:.3f}s, "
                      f"decode {rates[-1] if rates else 0:.1f} tok/s ({len(times)} tokens)", flush=True)
    res = {}
    for name, per_length in samples.items():
        res[name] = {}
        for n, (ttfts, rates, counts) in per_length.items():
            res[name][n] = {"ttft_s": statistics.median(ttfts),
                            "decode_tok_s": statistics.median(rates) if rates else None,
                            "generated": min(counts),
                            "ttft_samples": ttfts, "decode_samples": rates}
    return res


# ---------------------------------------------------------------- report
def table(results: dict, lengths: list[int]) -> str:
    names = [n for n in ("genai", "llama") if n in results] + [n for n in results if n not in ("genai", "llama")]
    label = {"genai": "ORT-genai", "llama": "llama.cpp", **{n: n for n in results if n not in ("genai", "llama")}}
    ref = "llama" if "llama" in results else ("genai" if "genai" in results and len(names) > 1 else None)
    head = ["prompt tokens"]
    for n in names:
        head.append(f"{label[n]} TTFT s")
    for n in names:
        if ref and n != ref:
            head.append(f"{label[n]}/{label[ref]} TTFT")
    for n in names:
        head.append(f"{label[n]} decode tok/s")
    for n in names:
        if ref and n != ref:
            head.append(f"{label[n]}/{label[ref]} decode")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for L in lengths:
        r = [str(L)]
        for n in names:
            r.append(f"{results[n][L]['ttft_s']:.3f}")
        for n in names:
            if ref and n != ref:
                r.append(f"{results[n][L]['ttft_s'] / results[ref][L]['ttft_s']:.2f}x")
        for n in names:
            v = results[n][L]["decode_tok_s"]
            r.append(f"{v:.1f}" if v else "-")
        for n in names:
            if ref and n != ref:
                a, b = results[n][L]["decode_tok_s"], results[ref][L]["decode_tok_s"]
                r.append(f"{a / b:.2f}x" if a and b else "-")
        rows.append("| " + " | ".join(r) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    cache = fdm.cache_root()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", type=Path, default=fdm.model_dir_for(cache, "cpu"))
    ap.add_argument("--gguf", type=Path, default=cache / "dl" / fdm.GGUF_NAME)
    ap.add_argument("--threads", type=int, default=free_cores())
    ap.add_argument("--lengths", default="256,1024,2048")
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--backends", default="genai,llama", help="comma list of genai,llama")
    ap.add_argument("--server", action="append", default=[],
                    help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080, or LABEL=URL; repeatable")
    ap.add_argument("--server-model", help="model name to send (default: first of /v1/models)")
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "keep"],
                    help="OMP_WAIT_POLICY for llama.cpp unless already set in the environment "
                         "(ACTIVE is llama.cpp's usual behaviour, fastest on otherwise idle cores)")
    args = ap.parse_args(argv)
    if args.omp_wait_policy != "keep":
        os.environ.setdefault("OMP_WAIT_POLICY", args.omp_wait_policy)

    os.environ["HF_HUB_OFFLINE"] = "1"
    lengths = [int(x) for x in args.lengths.split(",") if x]
    tokenizer_json = args.model_dir / "tokenizer.json"
    if not tokenizer_json.is_file():
        raise SystemExit(f"{tokenizer_json} not found: run fetch_default_model.py first")
    prompts = make_prompts(tokenizer_json, lengths, args.repeats)
    backends = [b for b in args.backends.split(",") if b]
    runners = {}
    if "genai" in backends:
        runners["genai"] = bench_genai(args.model_dir, args.threads)
    if "llama" in backends:
        runners["llama"] = bench_llama(args.gguf, args.threads, max(lengths) + args.gen + 16)
    for entry in args.server:
        label, _, url = entry.partition("=") if "=" in entry.split("://")[0] else ("server", "", entry)
        runners[label or "server"] = bench_server(url, args.server_model, tokenizer_json)
    results = run_backends(runners, prompts, args.gen, args.repeats)
    import platform

    meta = {"threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "gen_tokens": args.gen, "repeats": args.repeats,
            "model_dir": str(args.model_dir), "gguf": str(args.gguf), "server": args.server,
            "machine": f"{platform.machine()} {os.cpu_count()} cpus",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print()
    print(f"threads={args.threads}, {args.gen} generated tokens, median of {args.repeats}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {os.getloadavg()[0]:.1f}")
    print(table(results, lengths))
    if args.json_out:
        args.json_out.write_text(json.dumps({"meta": meta, "results": {
            k: {str(n): v for n, v in r.items()} for k, r in results.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
