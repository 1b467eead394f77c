"""Scores of one predicted middle against the reference, and their aggregation."""
from __future__ import annotations

import re
from collections import Counter

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def normalize(text: str) -> str:
    """Trailing whitespace off every line; leading and trailing blank lines off the whole."""
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize(prediction) == normalize(reference))


def edit_similarity(prediction: str, reference: str) -> float:
    a, b = normalize(prediction), normalize(reference)
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def identifier_f1(prediction: str, reference: str) -> float:
    p, r = Counter(IDENT.findall(prediction)), Counter(IDENT.findall(reference))
    if not p and not r:
        return 1.0
    common = sum((p & r).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def score(prediction: str, reference: str) -> dict:
    return {
        "em": exact_match(prediction, reference),
        "es": edit_similarity(prediction, reference),
        "id_f1": identifier_f1(prediction, reference),
    }


def aggregate(rows: list[dict]) -> dict:
    """Means over rows that have scores; `errors` counts rows whose pipeline failed (scored as
    empty predictions, so a failure can never raise a score)."""
    n = len(rows)
    if n == 0:
        return {"n": 0, "em": None, "es": None, "id_f1": None, "latency_ms": None, "prompt_tokens": None,
                "empty": 0, "errors": 0}
    latencies = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    prompt_tokens = [r["prompt_tokens"] for r in rows if r.get("prompt_tokens") is not None]
    return {
        "n": n,
        "em": sum(r["em"] for r in rows) / n,
        "es": sum(r["es"] for r in rows) / n,
        "id_f1": sum(r["id_f1"] for r in rows) / n,
        "latency_ms": sum(latencies) / len(latencies) if latencies else None,
        "prompt_tokens": sum(prompt_tokens) / len(prompt_tokens) if prompt_tokens else None,
        "empty": sum(1 for r in rows if not r["prediction"].strip()),
        "errors": sum(1 for r in rows if r.get("error")),
    }
