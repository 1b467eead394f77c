"""Self-checks of the evaluation's own pieces (no model, no LSP): metrics, applying an item,
case invariants, Go rules, the dev/held-out split, archives, sha256 refusal, naive-full's
windows, the rest systems' names.
`python tests/eval/test_eval.py`; `run.py --smoke` runs them too."""
from __future__ import annotations

import dataclasses
import json
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baselines  # noqa: E402
import cases as case_builder  # noqa: E402
import metrics  # noqa: E402
import packages as pkgs  # noqa: E402
from run import paced_system, position_to_offset, predicted_middle  # noqa: E402


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
    _check_cases([p for p in pkgs.load() if p.smoke])


def test_go_cases_are_consistent():
    # the first dev Go package: the same invariants as the smoke packages
    _check_cases([next(p for p in pkgs.load() if p.language == "go" and p.half == "dev")])


def _check_cases(packages):
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


GO_UTIL = """package demo

// Package-level names that main.go uses.

import "strings"

const (
\tModeA Mode = iota
\tModeB
)

var (
\tdefaultName, otherName = "x", "y"
)

type (
\tMode  int
\tAlias = string
)

type Helper struct{ n int }

func computeTotal(x int) int { return x * 2 }

func (h *Helper) Assist(s string) string {
\treturn strings.Repeat(s, h.n)
}
"""

GO_MAIN = """package demo

import (
\t"fmt"
\tstr "strings"
)

import "os"

/* A block comment
 * that goes on.
 */

// Widget holds things.
type Widget struct {
\tHelper *Helper
\tCount  int
}

type Runner interface {
\tcomputeTotal(w *Widget) error
}

func NewWidget(name string) *Widget {
\tw := &Widget{Count: computeTotal(len(name))}
\tfmt.Println(str.ToUpper(name), os.Args, "Helper Assist(")
\treturn w
}

func (w *Widget) Describe(mode Mode) string {
\ts := fmt.Sprintf("%d %v", w.Count, w.Helper.Assist("-"))
\tif w.Count > 1 {
\t\ts += "s"
\t}
\treturn s
}

var tmpl = `line one
\tfirst := computeTotal(1) {
\t\tsecond := computeTotal(2)
`
"""


def test_go_rules():
    main_lines = GO_MAIN.split("\n")
    at = lambda text: main_lines.index(text)
    # definitions: func, method, type, const, var, and names inside grouped blocks
    assert case_builder.definitions(GO_UTIL, "go") == {
        "ModeA", "ModeB", "defaultName", "otherName", "Mode", "Alias", "Helper", "computeTotal", "Assist",
    }
    assert case_builder.definitions(GO_MAIN, "go") == {"Widget", "Runner", "NewWidget", "Describe", "tmpl"}
    # package, imports (single and block), comments, raw-string lines are never holes
    code, prose = case_builder.code_lines(GO_MAIN, "go")
    for line in ("package demo", "import (", '\t"fmt"', '\tstr "strings"', ")", 'import "os"',
                 " * that goes on.", "// Widget holds things.", "\tfirst := computeTotal(1) {"):
        assert not code[at(line)], line
    assert prose[at("\tfirst := computeTotal(1) {")] and prose[at(" * that goes on.")]
    for line in ("\tw := &Widget{Count: computeTotal(len(name))}", "\treturn s", "type Widget struct {"):
        assert code[at(line)], line
    # a multi-line body with tab indentation: Describe's, closed by `}` at the header's indent
    bodies = list(case_builder._multi_line_bodies(main_lines, code, prose, "go"))
    first = at('\ts := fmt.Sprintf("%d %v", w.Count, w.Helper.Assist("-"))')
    assert (first, at("\treturn s")) in bodies, bodies
    assert not any(main_lines[i - 1].startswith("var tmpl") for i, _ in bodies), "raw string is not a body"
    assert (at("\tfirst := computeTotal(1) {") + 1, at("\t\tsecond := computeTotal(2)")) not in bodies
    # single-line cursors: never right after `{ ( [`, never inside `:=`
    assert not case_builder._single_line_ok("go", "\tif w.Count > 1 {", "\n")
    assert not case_builder._single_line_ok("go", "\tw :", "= &Widget{}")
    assert case_builder._single_line_ok("go", "\tw := ", "&Widget{Count: 1}")
    # cross-file: from a temporary package of two files (+ a test file and a subfolder, ignored)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "util.go").write_text(GO_UTIL)
        (root / "main.go").write_text(GO_MAIN)
        (root / "main_test.go").write_text(GO_MAIN.replace("func NewWidget", "func newWidget"))
        (root / "examples").mkdir()
        (root / "examples" / "ex.go").write_text(GO_MAIN)
        package = pkgs.Package(name="demo", version="0", language="go", url="https://example.invalid/demo.zip",
                               sha256="0" * 64, root=".", source=".", half="dev")
        found = case_builder.candidates(package, root)
    assert {c.path for k in case_builder.KINDS for c in found[k]} <= {"util.go", "main.go"}
    cross = {(c.path, main_lines[c.line] if c.path == "main.go" else c.line, c.identifier) for c in found["cross-file"]}
    main_cross = {(line, ident) for path, line, ident in cross if path == "main.go"}
    assert ("\tw := &Widget{Count: computeTotal(len(name))}", "computeTotal") in main_cross, cross
    assert ('\ts := fmt.Sprintf("%d %v", w.Count, w.Helper.Assist("-"))', "Assist") in main_cross, cross
    # never: a name this file also declares as a struct field (`Helper *Helper`), an interface
    # method declaration, words in a string literal
    assert not any(ident == "Helper" for _, ident in main_cross), cross
    assert not any(line == "\tcomputeTotal(w *Widget) error" for line, _ in main_cross), cross
    assert not any(line.startswith("\tfmt.Println") for line, _ in main_cross), cross
    for c in found["multi-line"]:
        assert c.column == 1 and c.column_utf16 == 1, c  # after one tab


def test_go_reference_and_locals():
    ref = lambda line, name, imported=frozenset(), decl=False: case_builder._is_reference(
        "go", line, next(m for m in case_builder.IDENT.finditer(line) if m.group() == name), set(imported), decl)
    assert ref("\tx := parseArgs(a)", "parseArgs")
    assert ref("\tc := &Command{}", "Command") and ref("\tvar c *Command", "Command")
    assert ref("\tcase ModeA:", "ModeA") and ref("\treturn c.flagSet()", "flagSet")
    assert not ref("\tparseArgs := 1", "parseArgs") and not ref("\tUse: x,", "Use")
    assert not ref("\tn, parseArgs := f()", "parseArgs")
    assert not ref("func parseArgs(a int) {", "parseArgs") and not ref("func (c *C) Execute() {", "Execute")
    assert not ref("func f(parseArgs string) {", "parseArgs") and not ref("\tvar Mode int", "Mode")
    assert not ref("\tHelper *Helper", "Helper", decl=True) and ref("\tHelper *Helper", "Helper")
    assert not ref("\treturn http.HandlerFunc(f)", "HandlerFunc", imported={"http"})
    assert not ref("\tw.String()", "String")  # too generic a method
    bound = lambda text, name: case_builder._bound_locally(text, name, "go")
    assert bound("\tfor _, item := range items {\n", "item") and bound("\titem := 1\n", "item")
    assert bound("\tvar a, item int\n", "item") and bound("func f(x, item int) {}\n", "item")
    assert not bound("\tswitch m {\n\tcase ModeA:\n", "ModeA") and not bound("\tx := item(1)\n", "item")
    assert case_builder._go_imports('import (\n\t"fmt"\n\tyaml "gopkg.in/yaml.v3"\n\t"github.com/go-chi/chi/v5"\n'
                                    '\t"github.com/mattn/go-isatty"\n\t_ "embed"\n)\n'.split("\n")) == {
        "fmt", "yaml", "chi", "isatty"}


def _toml(entries: list[dict]) -> str:
    out = []
    for e in entries:
        out.append("[[package]]")
        out += [f"{k} = {'true' if v is True else repr(v).replace(chr(39), chr(34))}" for k, v in e.items()]
    return "\n".join(out) + "\n"


def test_half_is_required_and_checked():
    entry = {"name": "x", "version": "1", "language": "go", "url": "https://example.invalid/x.zip",
             "sha256": "0" * 64, "root": "x", "source": "."}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "packages.toml"
        for half in pkgs.HALVES:
            path.write_text(_toml([{**entry, "half": half}]))
            assert pkgs.load(path)[0].half == half
        for bad in ({}, {"half": "train"}, {"half": ""}):
            path.write_text(_toml([{**entry, **bad}]))
            try:
                pkgs.load(path)
            except pkgs.PackageError as e:
                assert "half" in str(e), e
            else:
                raise AssertionError(f"half {bad} must be refused")
    # the real list: both halves hold every language, and the smoke packages stay in dev
    packages = pkgs.load()
    for half in pkgs.HALVES:
        assert {p.language for p in packages if p.half == half} == set(pkgs.EXTENSIONS), half
    assert all(p.half == "dev" for p in packages if p.smoke)
    assert len({p.key for p in packages}) == len(packages)


def test_zip_archives():
    assert pkgs.go_proxy_url("github.com/BurntSushi/toml", "v1.4.0") == \
        "https://proxy.golang.org/github.com/!burnt!sushi/toml/@v/v1.4.0.zip"
    proxied = pkgs.Package(name="toml", version="1.4.0", language="go", half="dev", sha256="0" * 64,
                           url=pkgs.go_proxy_url("github.com/BurntSushi/toml", "v1.4.0"),
                           root="github.com/!burnt!sushi/toml@v1.4.0", source=".")
    assert proxied.archive_name == "toml-1.4.0.zip" and proxied.extension == ".go"
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp) / "good.zip", Path(tmp) / "bad.zip"
        with zipfile.ZipFile(good, "w") as z:
            z.writestr("example.com/m@v1.0.0/a.go", "package m\n")
        with zipfile.ZipFile(bad, "w") as z:
            z.writestr("example.com/m@v1.0.0/a.go", "package m\n")
            z.writestr("example.com/m@v1.0.0/../../../escaped.go", "package m\n")
        pkgs.extract(good, Path(tmp) / "out")
        assert (Path(tmp) / "out" / "example.com/m@v1.0.0/a.go").read_text() == "package m\n"
        try:
            pkgs.extract(bad, Path(tmp) / "out2")
        except pkgs.PackageError as e:
            assert "unsafe" in str(e)
        else:
            raise AssertionError("a zip member outside the folder must be refused")
        assert not (Path(tmp) / "escaped.go").exists()


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


class CharTokens:
    """A stand-in token counter: one token per character (no model needed)."""

    def counts(self, pieces: list[str]) -> list[int]:
        return [len(p) for p in pieces]

    def count(self, text: str) -> int:
        return len(text)


def test_naive_full():
    W = baselines.Window
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "demo"
        root.mkdir()
        # other.py: line i is `v{i} = shared`; 45 lines → windows at 0, 10, 20, 30 (20 lines each)
        other = [f"v{i} = shared" for i in range(45)]
        (root / "other.py").write_text("\n".join(other))
        (root / "notes.txt").write_text("\n".join(other))  # another extension: never a window
        # the 20 lines above the cursor name shared and v12..v23, all inside window 10
        # (Jaccard 13/21); window 0 9/25, window 20 5/29, window 30 1/28
        head = "\n".join(f"pad_{i} = 0" for i in range(300))  # > 1,024 characters before the query
        query = "\n".join(f"shared = v{i}" for i in [*range(12, 24), *[12] * 7])  # 19 lines + the cursor's
        holed = f"{head}\n{query}\nshared = " + "\n".join(f"tail_{i} = 1" for i in range(100))
        cursor = holed.rindex("shared = ") + len("shared = ")
        (root / "main.py").write_text(holed)
        windows = baselines.similar_windows(root, root / "main.py", ".py", holed, cursor)
        assert [(w.path, w.start) for w in windows] == [("other.py", s) for s in (10, 0, 20, 30)], windows
        for w in windows:
            assert w.text == "\n".join(other[w.start : w.start + 20]), w  # 20 lines, every 10
        assert abs(windows[0].score - 13 / 21) < 1e-9
        # 0 and 20 overlap the chosen 10 and are skipped; 30 does not (its first line is 10's 21st)
        tokens = CharTokens()
        chosen = baselines.full_windows(tokens, windows)
        assert [w.start for w in chosen] == [10, 30], chosen
        prompt = baselines.naive_full_prompt(tokens, root, "main.py", ".py", holed, cursor)
        sep = baselines.FILE_SEP
        expected_head = (f"<|repo_name|>demo\n{sep}other.py\n{windows[3].text}\n"
                         f"{sep}other.py\n{windows[0].text}\n{sep}main.py\n<|fim_prefix|>")
        assert prompt.startswith(expected_head), prompt[:400]  # the most similar last, nearest the file
        prefix = prompt[len(expected_head) : prompt.index("<|fim_suffix|>")]
        suffix = prompt[prompt.index("<|fim_suffix|>") + 14 : prompt.index("<|fim_middle|>")]
        assert prompt.endswith("<|fim_middle|>") and prefix.endswith("\nshared = ")
        # whole lines, the fixed 1,024 / 256 budgets (not --context-tokens)
        assert 1024 - 14 < len(prefix) <= 1024 and holed[:cursor].endswith(prefix), len(prefix)
        assert prefix.startswith("pad_") and holed[: cursor - len(prefix)].endswith("\n")
        assert 256 - 14 < len(suffix) <= 256 and holed[cursor:].startswith(suffix + "\n"), len(suffix)
    # the 512-token cap: one that does not fit is skipped and the next tried; an overlapping one skipped
    ranked = [W("a.py", 0, "a" * 600, 0.9), W("b.py", 0, "b" * 300, 0.8), W("b.py", 10, "c" * 50, 0.7),
              W("c.py", 0, "d" * 150, 0.6), W("d.py", 0, "e" * 100, 0.5), W("e.py", 0, "f" * 6, 0.4)]
    chosen = baselines.full_windows(tokens, ranked)
    assert [(w.path, w.start) for w in chosen] == [("b.py", 0), ("c.py", 0), ("e.py", 0)], chosen
    assert sum(tokens.count(baselines._window_text(w)) for w in chosen) <= baselines.FULL_RETRIEVED_TOKENS == 512


def test_paced_system_names():
    assert paced_system("defaults") == (True, None)
    assert paced_system("rest0") == (True, 0.0) and paced_system("rest3") == (True, 3.0)
    assert paced_system("rest1.5") == (True, 1.5)
    for name in ("full", "plain", "naive-full", "rest", "restx", "rest-1", "myrest1"):
        assert paced_system(name) == (False, None), name


def test_merge_results_pairs_cases_across_files():
    import subprocess
    row = lambda mode, i, em: {"id": f"cross-file/p/{i:03d}", "kind": "cross-file", "language": "rust", "mode": mode,
                               "em": em, "es": em, "id_f1": em, "latency_ms": 1.0, "prediction": "x"}
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a.json", Path(tmp) / "b.json"
        a.write_text(json.dumps({"rows": [row("naive-full", i, 0.0) for i in range(4)] + [row("full", i, 1.0) for i in range(4)]}))
        # b has one case fewer; its `full` ran at another budget and is renamed beside a's.
        b.write_text(json.dumps({"rows": [row("full", i, float(i % 2)) for i in range(3)]}))
        out = subprocess.run([sys.executable, str(Path(__file__).parent / "merge_results.py"), str(a), f"{b}:full=full@1024"],
                             capture_output=True, text=True, check=True).stdout
        assert "3 cases in every file" in out, out
        assert "| full − naive-full | overall | 3 | +100.0" in out, out
        assert "| full@1024 − naive-full | overall | 3 | +33.3" in out, out
        clash = subprocess.run([sys.executable, str(Path(__file__).parent / "merge_results.py"), str(a), str(b)],
                               capture_output=True, text=True)
        assert clash.returncode == 2, clash


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
