#!/usr/bin/env python3
"""Serving figures for ghostline-serve (benchmark, not a test).

1. Follow-up keystroke: time to first token for a prompt of N tokens, then for the same prompt with
   10 characters appended (what the next keystroke sends). ghostline-serve reuses its cached
   prefix; llama.cpp reuses the previous evaluation's tokens when not reset; onnxruntime-genai's
   Python API has no cross-request reuse, so its follow-up is a cold prefill.
2. Concurrent streams: aggregate generated tokens/s with 1, 8 and 32 clients streaming at once
   (each a distinct 128-token prompt, 32 tokens, ignore_eos). The references get the same N
   prompts at once in the way each can take them: onnxruntime-genai as one static batch of N
   sequences (its Python API batches only sequences that start together), llama-cpp-python one
   sequence after another (its `Llama` object holds one sequence; its server queues requests).
   Time to first token counts from the moment all N arrived.

    python bench_serving.py --server http://127.0.0.1:8123 [--threads N] [--length 1024]
"""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.parse
import http.client
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_reference as br  # noqa: E402
import fetch_default_model as fdm  # noqa: E402

TYPED = "\n    # ok"  # ten characters, as if typed after the prompt


def stream(url: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """Returns (time to first token, total time, tokens) for one streaming request."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=900)
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True, "ignore_eos": True})
    t0 = time.perf_counter()
    c.request("POST", "/v1/completions", body=body, headers={"Content-Type": "application/json"})
    times = br.text_chunk_times(c.getresponse())
    c.close()
    first = times[0] - t0 if times else float("nan")
    return first, time.perf_counter() - t0, len(times)


def followup_server(url, text):
    cold, _, _ = stream(url, text, 1)
    warm, _, _ = stream(url, text + TYPED, 1)
    return cold, warm


def followup_llama(gguf, threads, tok, text):
    from llama_cpp import Llama

    ids = tok.encode(text, add_special_tokens=False).ids
    ids2 = tok.encode(text + TYPED, add_special_tokens=False).ids
    llm = Llama(model_path=str(gguf), n_ctx=len(ids2) + 1024, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)

    def ttft(tokens, reset):
        t0 = time.perf_counter()
        for _ in llm.generate(tokens, temp=0.0, top_k=1, reset=reset):
            return time.perf_counter() - t0

    llm.reset()
    cold = ttft(ids, True)
    # With reset=True, llama-cpp-python keeps the longest common prefix of its last evaluation
    # and evaluates only the rest (reset=False would append the whole prompt again).
    warm = ttft(ids2, True)
    return cold, warm


def followup_genai(model_dir, threads, tok, text):
    import onnxruntime_genai as og

    config = og.Config(str(model_dir))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
    model = og.Model(config)

    def ttft(s):
        ids = tok.encode(s, add_special_tokens=False).ids
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=len(ids) + 1, do_sample=False)
        g = og.Generator(model, params)
        t0 = time.perf_counter()
        g.append_tokens(ids)
        g.generate_next_token()
        return time.perf_counter() - t0

    return ttft(text), ttft(text + TYPED)


def concurrent(url, prompts, streams, gen):
    results = [None] * streams
    def run(i):
        results[i] = stream(url, prompts[i], gen)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    tokens = sum(r[2] for r in results)
    ttfts = sorted(r[0] for r in results)
    return tokens / wall, ttfts[len(ttfts) // 2], ttfts[-1]


def concurrent_genai(model_dir, threads, prompts, streams, gen):
    """N sequences as one static batch: (aggregate tokens/s, TTFT, TTFT); every row gets its
    first token from the same step."""
    import numpy as np
    import onnxruntime_genai as og

    config = og.Config(str(model_dir))
    config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads, "inter_op_num_threads": 1}}}}))
    model = og.Model(config)
    batch = np.array([list(p) for p in prompts[:streams]], dtype=np.int32)
    params = og.GeneratorParams(model)
    length = batch.shape[1] + gen
    params.set_search_options(batch_size=streams, max_length=length, min_length=length, do_sample=False)
    g = og.Generator(model, params)
    t0 = time.perf_counter()
    g.append_tokens(batch)
    g.generate_next_token()
    first = time.perf_counter() - t0
    steps = 1
    while not g.is_done() and steps < gen:
        g.generate_next_token()
        steps += 1
    wall = time.perf_counter() - t0
    return streams * steps / wall, first, first


def concurrent_llama(gguf, threads, prompts, streams, gen):
    """N sequences one after another in one `Llama`: (aggregate tokens/s, median TTFT, worst TTFT),
    TTFTs counted from the start, as N requests arriving together would see them."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False)
    ttfts, tokens = [], 0
    t0 = time.perf_counter()
    for ids in prompts[:streams]:
        llm.reset()  # distinct prompts: nothing to reuse, and no reuse from the previous one
        n = 0
        for _ in llm.generate(list(ids), temp=0.0, top_k=1, reset=True):
            if n == 0:
                ttfts.append(time.perf_counter() - t0)
            n += 1
            if n >= gen:
                break
        tokens += n
    wall = time.perf_counter() - t0
    ttfts.sort()
    return tokens / wall, ttfts[len(ttfts) // 2], ttfts[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cache = fdm.cache_root()
    ap.add_argument("--server", required=True)
    ap.add_argument("--threads", type=int, default=br.free_cores())
    ap.add_argument("--length", type=int, default=1024)
    ap.add_argument("--streams", default="1,8,32")
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--backends", default="genai,llama")
    ap.add_argument("--model-dir", type=Path, default=fdm.model_dir_for(cache, "cpu"),
                    help="the ONNX model onnxruntime-genai runs (and whose tokenizer makes the prompts)")
    args = ap.parse_args()
    from tokenizers import Tokenizer

    model_dir = args.model_dir
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    streams = [int(s) for s in args.streams.split(",")]
    prompts, _ = br.make_prompts(model_dir / "tokenizer.json", [args.length], 1)
    # A first line unique to this run, so no prefix cache (the server's or llama.cpp's) holds
    # anything of these prompts from an earlier run: "cold" is really cold.
    run_tag = f"# benchmark run {time.time_ns()}\n"
    text = run_tag + tok.decode(prompts[args.length][0], skip_special_tokens=False)

    rows = [("ghostline-serve", *followup_server(args.server, text))]
    if "llama" in args.backends:
        rows.append(("llama.cpp", *followup_llama(cache / "dl" / fdm.GGUF_NAME, args.threads, tok, text)))
    if "genai" in args.backends:
        rows.append(("onnxruntime-genai", *followup_genai(model_dir, args.threads, tok, text)))
    print(f"\nFollow-up keystroke at {args.length} prompt tokens (+10 characters), threads={args.threads}")
    print("| runtime | cold TTFT s | follow-up TTFT s | follow-up / cold |\n|---|---|---|---|")
    for name, cold, warm in rows:
        print(f"| {name} | {cold:.3f} | {warm:.3f} | {warm / cold:.1%} |")

    # Slices past the follow-up prompt's, so no stream starts from a cached prefix.
    skip = args.length // 128 + 1
    many, _ = br.make_prompts(model_dir / "tokenizer.json", [128], skip + max(streams))
    texts = [f"# stream {i} {run_tag}" + tok.decode(ids, skip_special_tokens=False) for i, ids in enumerate(many[128][skip:])]
    ids_128 = many[128][skip:]
    print(f"\nConcurrent streams (128-token prompts, {args.gen} tokens each), threads={args.threads}")
    print("| runtime | streams | aggregate tokens/s | median TTFT s | worst TTFT s |\n|---|---|---|---|---|")
    for n in streams:
        tps, med, worst = concurrent(args.server, texts, n, args.gen)
        print(f"| ghostline-serve | {n} | {tps:.1f} | {med:.2f} | {worst:.2f} |", flush=True)
    if "genai" in args.backends:
        for n in streams:
            tps, med, worst = concurrent_genai(model_dir, args.threads, ids_128, n, args.gen)
            print(f"| onnxruntime-genai (static batch) | {n} | {tps:.1f} | {med:.2f} | {worst:.2f} |", flush=True)
    if "llama" in args.backends:
        for n in streams:
            tps, med, worst = concurrent_llama(cache / "dl" / fdm.GGUF_NAME, args.threads, ids_128, n, args.gen)
            print(f"| llama.cpp (one at a time) | {n} | {tps:.1f} | {med:.2f} | {worst:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
