"""One report from several `run.py` results on the same cases: a system run at another budget,
or a reference run once and compared with systems of a later run, without running anything
again. Rows are paired by case id; a system may be renamed per file (`FILE:old=new,...`), so
`full` at 1,024 tokens and `full` at 2,048 tokens can sit side by side.

    python tests/eval/merge_results.py results/A.json results/B.json:full=full@1024 --references naive-full
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import metrics  # noqa: E402
import run  # noqa: E402


def load(spec: str) -> list[dict]:
    path, _, renames = spec.partition(":")
    names = dict(pair.split("=", 1) for pair in renames.split(",") if pair)
    rows = json.loads(Path(path).read_text())["rows"]
    return [{**r, "mode": names.get(r["mode"], r["mode"])} for r in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="RESULT.json[:old=new,...]")
    ap.add_argument("--references", default="plain,naive,naive-full",
                    help="systems every other one is compared with (those present)")
    args = ap.parse_args()
    rows: list[dict] = []
    for spec in args.results:
        rows.extend(load(spec))
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    clash = {(r["mode"], r["id"]) for r in rows}
    if len(clash) != len(rows):
        print("the same system and case twice: rename one (FILE:old=new)", file=sys.stderr)
        return 2
    # Only the cases every system has, so the systems stay comparable.
    ids = set.intersection(*({r["id"] for r in rows if r["mode"] == m} for m in modes))
    rows = [r for r in rows if r["id"] in ids]
    summary = {m: {g: metrics.aggregate([r for r in rows if r["mode"] == m and keep(r)])
                   for g, keep in run.groups(rows)} for m in modes}
    references = [m for m in args.references.split(",") if m in modes]
    print(f"{len(ids)} cases in every file; systems {', '.join(modes)}\n")
    print(run.table(summary, modes))
    print()
    print(run.paired_table(rows, [m for m in modes if m not in references], references, run.groups(rows)))
    print()
    for line in run.targets(rows, modes):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
