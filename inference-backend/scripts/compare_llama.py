#!/usr/bin/env python3
"""Is the prepared ONNX model the GGUF's model? Logits and greedy continuations against llama.cpp.

    PY=~/.cache/ghostline/venv/bin/python   # after setup_python.sh --bench (llama-cpp-python)
    $PY inference-backend/scripts/compare_llama.py [--model qwen2.5-coder-0.5b] [--prompts 24] [--greedy 50]

FIM prompts are cut, seeded, from the evaluation's pinned packages (tests/eval; Rust, Python and
Go files under $GHOSTLINE_CACHE/eval/src): up to 384 tokens before a random cursor, up to 128
after it. For each prompt both runtimes compute the next-token logits from an empty cache
(ghostline: the prepared model directory's graph in ONNX Runtime, as ghostline-serve loads it;
llama.cpp: llama-cpp-python on the same GGUF), and for the first ``--greedy`` prompts both
decode 64 tokens greedily. Prints a table: the logits' max |difference| (median and worst over
prompts, against the logits' own spread), how often the top token agrees, and the share of
identical 64-token continuations with where the others first differ.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fetch_default_model as fdm  # noqa: E402
import gguf_onnx  # noqa: E402

EXTENSIONS = (".rs", ".py", ".go")


def fim_prompts(tok, n: int, seed: int) -> list[list[int]]:
    root = fdm.cache_root() / "eval" / "src"
    files = sorted(p for p in root.rglob("*") if p.suffix in EXTENSIONS and p.is_file() and p.stat().st_size > 2000)
    if not files:
        raise SystemExit(f"no source files under {root}: run tests/eval/packages.py first")
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        path = rng.choice(files)
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        if len(lines) < 40:
            continue
        cut = rng.randrange(20, len(lines) - 10)
        line = lines[cut]
        col = rng.randrange(len(line) - len(line.lstrip()), max(len(line) - 1, len(line) - len(line.lstrip()) + 1))
        before = "".join(lines[:cut]) + line[:col]
        after = line[col:] + "".join(lines[cut + 1:])
        pre = tok.encode(before, add_special_tokens=False).ids[-384:]
        suf = tok.encode(after, add_special_tokens=False).ids[:128]
        ids = [fdm.FIM_TOKENS["<|fim_prefix|>"], *pre, fdm.FIM_TOKENS["<|fim_suffix|>"], *suf,
               fdm.FIM_TOKENS["<|fim_middle|>"]]
        out.append(ids)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(fdm.MODELS), default=fdm.DEFAULT_MODEL)
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--greedy", type=int, default=50)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from llama_cpp import Llama
    from tokenizers import Tokenizer

    cache = fdm.cache_root()
    model_dir = fdm.model_dir_for(cache, "cpu", args.model)
    gguf_path = cache / "dl" / fdm.gguf_name(fdm.MODELS[args.model])
    g = gguf_onnx.Gguf(gguf_path)
    cfg = g.config()
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    prompts = fim_prompts(tok, max(args.prompts, args.greedy), args.seed)
    sess = gguf_onnx.ort_session(model_dir / "model.onnx", args.threads)
    llm = Llama(model_path=str(gguf_path), n_ctx=1024, n_threads=args.threads, n_batch=512, verbose=False)
    stop = set(fdm.STOP_IDS)

    # The tokenizers agree? (ghostline's tokenizer.json is written from the GGUF's vocabulary.)
    same_tokens = 0
    for ids in prompts[:args.prompts]:
        text = tok.decode(ids, skip_special_tokens=False)
        same_tokens += llm.tokenize(text.encode(), add_bos=False, special=True) == ids

    diffs, spreads, top1 = [], [], 0
    t0 = time.monotonic()
    for ids in prompts[:args.prompts]:
        ours = gguf_onnx.ort_prefill(sess, cfg, ids, keep=1)[0][-1]
        llm.reset()
        llm.eval(ids)
        # Without logits_all llama-cpp-python keeps no scores; the context holds the last row.
        theirs = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),)).astype(np.float32).copy()
        diffs.append(float(np.max(np.abs(ours - theirs))))
        spreads.append(float(np.std(theirs)))
        top1 += int(np.argmax(ours)) == int(np.argmax(theirs))

    identical, first_diff = 0, []
    for ids in prompts[:args.greedy]:
        ours = gguf_onnx.ort_greedy(sess, cfg, ids, args.tokens, stop)
        theirs: list[int] = []
        llm.reset()
        for t in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            theirs.append(int(t))
            if t in stop or len(theirs) >= args.tokens:
                break
        if ours == theirs:
            identical += 1
        else:
            first_diff.append(next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs))))
    elapsed = time.monotonic() - t0

    n = args.prompts
    print(f"\nModel {args.model}: {model_dir.name} (ONNX Runtime, 2 threads) against llama.cpp "
          f"(llama-cpp-python) on {gguf_path.name}; seed {args.seed}; {elapsed:.0f} s\n")
    print("| check | result |")
    print("|---|---|")
    print(f"| prompts tokenized identically (tokenizer.json vs llama.cpp) | {same_tokens} of {n} |")
    print(f"| next-token logits, max abs difference: median / worst of {n} prompts | "
          f"{statistics.median(diffs):.3f} / {max(diffs):.3f} (logits' std {statistics.median(spreads):.2f}) |")
    print(f"| same top token | {top1} of {n} |")
    print(f"| identical greedy {args.tokens}-token continuations | {identical} of {args.greedy} "
          f"({100 * identical / args.greedy:.0f}%) |")
    if first_diff:
        print(f"| where the others first differ (token index): median / min | "
              f"{statistics.median(first_diff):.0f} / {min(first_diff)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
