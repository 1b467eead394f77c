#!/usr/bin/env python3
"""The entropy threshold of `rules::looks_random`, decided on data (issue 29): Shannon entropy
(bits per character) of quoted literals of 16+ characters in token alphabets (base64, hex,
base62, URL-safe) among the pinned evaluation packages' ordinary strings, against the
*tune* half's credential values (never the held-out half).

    python3 tests/secrets/entropy_thresholds.py [EVAL_SRC]

Prints, per candidate threshold, the share of ordinary strings above it (would be redacted
where the name is secret-ish) and the share of tune credentials above it (caught).
"""
import json
import math
import os
import re
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN = re.compile(r"^[A-Za-z0-9+/=_\-.~]{16,}$")
QUOTED = re.compile(r"""["']([^"'\s\\]{16,200})["']""")


def entropy(v: str) -> float:
    c = Counter(v)
    n = len(v)
    return -sum(k / n * math.log2(k / n) for k in c.values())


def kind(v: str) -> str:
    if all(ch in "0123456789abcdefABCDEF" for ch in v):
        return "hex"
    return "b64"


def mixed(v):
    return any(c.isupper() for c in v) and any(c.islower() for c in v) and any(c.isdigit() for c in v)


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / ".cache/ghostline/eval/src"
    ordinary = {"hex": [], "b64": []}
    for root, _, names in os.walk(src):
        for name in names:
            try:
                text = (Path(root) / name).read_text()
            except (UnicodeDecodeError, OSError):
                continue
            for m in QUOTED.finditer(text):
                v = m.group(1)
                if TOKEN.match(v) and (kind(v) == "hex" or mixed(v)):
                    ordinary[kind(v)].append(entropy(v))
    corpus = json.loads((HERE / "corpus.json").read_text())
    tune = {"hex": [], "b64": []}
    for p in corpus["plants"]:
        v = p["value"]
        if p["half"] == "tune" and TOKEN.match(v) and (kind(v) == "hex" or mixed(v)):
            tune[kind(v)].append(entropy(v))
    for k, grid in (("hex", [2.5, 2.75, 3.0, 3.25, 3.5]), ("b64", [3.0, 3.25, 3.5, 3.75, 4.0, 4.25])):
        o, t = ordinary[k], tune[k]
        print(f"{k}: {len(o)} ordinary strings, {len(t)} tune credentials (mixed case and digits for non-hex)")
        for th in grid:
            fo = sum(e >= th for e in o) / max(len(o), 1)
            ft = sum(e >= th for e in t) / max(len(t), 1)
            print(f"  entropy >= {th:.2f}: ordinary {100 * fo:5.1f} %   tune credentials {100 * ft:5.1f} %")
        if t:
            print(f"  tune credentials: min {min(t):.2f}")


if __name__ == "__main__":
    main()
