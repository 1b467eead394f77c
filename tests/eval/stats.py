"""Paired differences between two systems on the same cases, with a bootstrap confidence
interval: the cases are resampled with replacement (seeded), the mean difference taken each
time, and the 2.5th and 97.5th percentiles reported."""
from __future__ import annotations

import random

RESAMPLES = 10_000


def paired(a: list[float], b: list[float], seed: int = 0, resamples: int = RESAMPLES) -> dict:
    """Mean of a − b over paired cases and its 95% bootstrap interval."""
    if len(a) != len(b):
        raise ValueError("paired samples of different lengths")
    n = len(a)
    if n == 0:
        return {"n": 0, "diff": None, "low": None, "high": None}
    diffs = [x - y for x, y in zip(a, b)]
    rng = random.Random(seed)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return {
        "n": n,
        "diff": sum(diffs) / n,
        "low": means[int(0.025 * resamples)],
        "high": means[min(resamples - 1, int(0.975 * resamples))],
    }


def describe(d: dict, percent: bool = True) -> str:
    if d["diff"] is None:
        return "–"
    k = 100 if percent else 1
    return f"{d['diff'] * k:+.1f} [{d['low'] * k:+.1f}, {d['high'] * k:+.1f}]"
