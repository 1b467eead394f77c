"""Self-checks of the evaluation's own pieces (no model, no LSP): metrics, applying an item,
case invariants, sha256 refusal. `python tests/eval/test_eval.py`; `run.py --smoke` runs them too."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cases as case_builder  # noqa: E402
import metrics  # noqa: E402
import packages as pkgs  # noqa: E402
from run import position_to_offset, predicted_middle  # noqa: E402


def test_metrics():
    assert metrics.normalize("\n  a = 1  \n\tb\t\n\n") == "  a = 1\n\tb"
    assert metrics.exact_match("x = f(y)   \n", "x = f(y)") == 1.0
    assert metrics.exact_match(" x = f(y)", "x = f(y)") == 0.0
    assert metrics.levenshtein("kitten", "sitting") == 3
    assert abs(metrics.edit_similarity("kitten", "sitting") - (1 - 3 / 7)) < 1e-9
    assert metrics.edit_similarity("", "") == 1.0 and metrics.edit_similarity("", "ab") == 0.0
    # multiset: reference a a b, prediction a b c → common 2, P 2/3, R 2/3
    assert abs(metrics.identifier_f1("a(b, c)", "a.a + b") - 2 / 3) < 1e-9
    assert metrics.identifier_f1("()", "") == 1.0 and metrics.identifier_f1("", "x") == 0.0
    agg = metrics.aggregate([
        {"em": 1.0, "es": 1.0, "id_f1": 1.0, "latency_ms": 10, "prediction": "x"},
        {"em": 0.0, "es": 0.5, "id_f1": 0.0, "latency_ms": 30, "prediction": "", "error": "boom"},
    ])
    assert agg["n"] == 2 and agg["em"] == 0.5 and agg["latency_ms"] == 20 and agg["errors"] == 1 and agg["empty"] == 1


def test_applying_items():
    holed = "fn main() {\n    let x = \n}\n"
    cursor = holed.index("= ") + 2
    assert predicted_middle(holed, cursor, {"insertText": "42;"}) == "42;"
    line1 = {"line": 1, "character": 12}
    assert predicted_middle(holed, cursor, {"insertText": "42;", "range": {"start": line1, "end": line1}}) == "42;"
    # a range starting before the cursor re-types what is already there
    start = {"line": 1, "character": 10}
    assert predicted_middle(holed, cursor, {"insertText": "= 7;", "range": {"start": start, "end": line1}}) == "7;"
    assert predicted_middle(holed, cursor, {"insertText": {"kind": "snippet", "value": "1"}}) == "1"
    # UTF-16: the emoji is two code units, one code point
    text = "s = '😀' + x\n"
    assert position_to_offset(text, 0, 8) == text.index(" + x")
    try:
        predicted_middle(holed, cursor, {"range": None})
    except Exception as e:
        assert "malformed" in str(e)
    else:
        raise AssertionError("an item without insertText must be refused")


def test_cases_are_consistent():
    packages = [p for p in pkgs.load() if p.smoke]
    built = case_builder.build(packages, 6, seed=0)
    assert built == case_builder.build(packages, 6, seed=0), "case building is not deterministic"
    assert {c.kind for c in built} == set(case_builder.KINDS)
    for c in built:
        root = pkgs.fetch(next(p for p in packages if p.key == c.package))
        original = (root / c.path).read_text()
        holed = c.holed(original)
        at = case_builder.offset_of(original, c.line, c.column)
        assert holed[:at] + c.middle + holed[at:] == original
        assert c.middle.strip() and c.path not in c.open_files
        if c.kind == "multi-line":
            assert 2 <= c.middle.count("\n") + 1 <= 6, c
            assert not original.split("\n")[c.line][: c.column].strip(), "multi-line cursor after indentation only"
        else:
            assert "\n" not in c.middle and original.split("\n")[c.line][: c.column].strip(), c
        if c.kind == "cross-file":
            defs_here = case_builder.definitions(original, c.language)
            assert c.identifier in case_builder.IDENT.findall(c.middle) and c.identifier not in defs_here, c
            for where in c.defined_in:
                assert c.identifier in case_builder.definitions((root / where).read_text(), c.language), c


def test_sha256_mismatch_is_refused():
    good = next(p for p in pkgs.load() if p.smoke)
    pkgs.fetch(good)
    bad = dataclasses.replace(good, sha256="0" * 64)
    try:
        pkgs.fetch(bad)
    except pkgs.PackageError as e:
        assert "sha256" in str(e)
    else:
        raise AssertionError("a package whose sha256 differs must be refused")


def main() -> int:
    failed = 0
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            try:
                fn()
                print(f"ok   {name}")
            except Exception as e:  # noqa: BLE001
                failed += 1
                print(f"FAIL {name}: {e!r}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
