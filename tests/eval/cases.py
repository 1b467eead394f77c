"""Deterministic fill-in-the-middle cases from the pinned packages.

Three kinds:
- single-line: the cursor after some of a code line's tokens; the middle is the rest of the line.
- multi-line: a whole block body of 2-6 lines (after a line ending in `{` for Rust, `:` for
  Python); the cursor sits after the first body line's indentation.
- cross-file: like single-line, but the middle holds an identifier defined (`def`/`class`;
  `fn`/`struct`/`enum`/`trait`/`const`/`type`) in another file of the package and nowhere in
  the current one.

Cursor positions are chosen where ghostline-lsp's `multiline: auto` asks for what the kind
expects: single-line cursors never follow `{ ( [ =>` (or `:` in Python), multi-line ones sit
after indentation only. Comments, docstrings, blank lines, attributes, imports and trivial lines
(`}`, `pass`, `else:` ...) are never holes.

    python tests/eval/cases.py --cases 16 --out cases.jsonl   # writes the cases for inspection
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import packages as pkgs

KINDS = ("single-line", "multi-line", "cross-file")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
TOKEN = re.compile(r"[A-Za-z_0-9]+|\S")
DEFINITIONS = {
    "python": re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+([A-Za-z_]\w*)", re.M),
    "rust": re.compile(r"\b(?:fn|struct|enum|trait|const|type)\s+([A-Za-z_]\w*)"),
}
# Names that are "defined in another file" only in the sense that every file defines them.
COMMON = {
    "rust": {
        "new", "default", "fmt", "from", "into", "clone", "eq", "cmp", "hash", "next", "deref",
        "drop", "as_ref", "as_str", "len", "is_empty", "iter", "get", "get_mut", "parse",
        "partial_cmp", "from_str", "to_string", "serialize", "deserialize", "visit", "fn", "Self",
        "Error", "Output", "Target", "Item", "Err", "Ok", "Some", "None", "Value", "with_capacity",
        "deserialize_any", "index", "index_mut", "into_iter", "extend", "from_iter", "write",
        "display", "span", "is_some", "is_none",
    },
    "python": {
        "__init__", "__repr__", "__str__", "__eq__", "__call__", "__enter__", "__exit__",
        "__iter__", "__len__", "__getitem__", "__hash__", "get", "main", "run", "open", "close",
        "read", "write", "self", "cls", "None", "True", "False", "format", "convert", "invoke",
        "copy", "items", "keys", "values", "update", "Session", "name",
    },
}
# Method names too generic to mean "the one defined in that other file" when called as `.name(`.
GENERIC_METHODS = {
    "flush", "write", "read", "close", "append", "extend", "split", "join", "strip", "encode",
    "decode", "startswith", "endswith", "lower", "upper", "pop", "setdefault", "fileno", "seek",
    "tell", "readline", "isatty", "push", "insert", "remove", "contains", "unwrap", "map",
    "as_mut", "to_owned", "push_str", "chars", "bytes", "trim", "finish", "reset", "clear",
    "getvalue", "readlines", "writelines", "truncate", "detach", "format", "fmt",
}
TQ, TQ1 = '"' * 3, "'" * 3  # triple quotes
TRIVIAL = {
    "}", "};", "})", "});", ")", "),", ");", "]", "],", "{", "(", "[", "pass", "else:", "try:",
    "finally:", "} else {", "else {", "return", "return;", "break", "break;", "continue",
    "continue;", "...", "*/", "Ok(())", "None", "self", "}))", "})?", ")?", "))", "});",
}


@dataclass
class Case:
    id: str
    package: str  # Package.key
    language: str
    kind: str
    path: str  # relative to the package root
    line: int  # 0-based
    column: int  # code points
    column_utf16: int
    middle: str
    open_files: list[str] = field(default_factory=list)  # other files the "editor" has open
    identifier: str | None = None  # cross-file: the name, and where it is defined
    defined_in: list[str] = field(default_factory=list)

    def holed(self, text: str) -> str:
        start = offset_of(text, self.line, self.column)
        assert text[start : start + len(self.middle)] == self.middle, f"{self.id}: middle not at its place"
        return text[:start] + text[start + len(self.middle) :]


def offset_of(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(l) + 1 for l in lines[:line]) + column


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


def _is_comment(stripped: str, language: str) -> bool:
    if language == "python":
        return stripped.startswith("#")
    return stripped.startswith(("//", "/*", "*", "#[", "#!["))


def code_lines(text: str, language: str) -> tuple[list[bool], list[bool]]:
    """Per line: is it non-trivial code (not blank, comment, docstring, attribute, import)?
    And is it prose (blank, comment, docstring)?"""
    result, prose = [], []
    in_doc = None  # the open triple quote, Python only
    for line in text.split("\n"):
        stripped = line.strip()
        ok = True
        is_prose = not stripped or _is_comment(stripped, language)
        if language == "python":
            if in_doc:
                ok, is_prose = False, True
                if stripped.count(in_doc) % 2 == 1:
                    in_doc = None
            else:
                for quote in (TQ, TQ1):
                    if quote in stripped:
                        ok, is_prose = False, True
                        if stripped.count(quote) % 2 == 1:
                            in_doc = quote
                        break
            if stripped.startswith(("import ", "from ", "@")):
                ok = False
        else:
            if re.match(r"(pub(\([\w:]+\))?\s+)?(use|mod|extern\s+crate)\b", stripped):
                ok = False
        if (
            not stripped
            or _is_comment(stripped, language)
            or stripped in TRIVIAL
            or len(stripped) < 6
            or len(line) > 120
        ):
            ok = False
        result.append(ok)
        prose.append(is_prose)
    return result, prose


def definitions(text: str, language: str) -> set[str]:
    return {m.group(1) for m in DEFINITIONS[language].finditer(text)} - {"fn"}


def _single_line_ok(language: str, before: str, middle: str) -> bool:
    before_code = before.strip()
    if not before_code:
        return False  # only indentation before the cursor: the LSP would go multi-line
    if before.rstrip().endswith(("{", "(", "[", "=>")) or (language == "python" and before.rstrip().endswith(":")):
        return False  # ghostline-lsp's auto mode would ask for a multi-line suggestion here
    core = middle.strip()
    if len(core) < 4 or len(TOKEN.findall(core)) < 2 or len(middle) > 100 or not IDENT.search(core):
        return False
    return True


def _is_reference(language: str, line: str, m: re.Match, imported: set[str]) -> bool:
    """Does this occurrence plausibly refer to the other file's definition (rather than to a
    local, a parameter or a field that happens to share its name)?"""
    before, after = line[: m.start()], line[m.end() :]
    name = m.group()
    method_call = before.endswith(".") and after.startswith("(") and name not in GENERIC_METHODS
    if language == "python":
        if before.rstrip().startswith(("def ", "class ", "async def ")):
            return False  # a parameter or a redefinition
        if re.match(r"\s*=(?!=)", after):
            return False  # keyword argument or assignment target
        return method_call or (not before.endswith(".") and name in imported)
    if before.endswith("."):
        return method_call
    if re.match(r"\s*:(?!:)", after) or re.search(r"\b(let|mut|fn|struct|enum|trait|const|type)\s+$", before):
        return False  # a binding, a field or parameter name, or a definition
    return (
        name[0].isupper()
        or after.startswith(("(", "::", "!"))
        or before.endswith("::")
    )


def _bound_locally(text: str, name: str, language: str) -> bool:
    """Is `name` also a local of this file (assigned, a parameter, a loop variable, an `as`
    alias, a field)? Then an occurrence may well mean that local, not the other definition."""
    n = re.escape(name)
    patterns = [
        rf"(?<![\w.]){n}\s*(?:=(?!=)|:(?!:))",  # assignment, annotation, keyword/param, field
        rf"\bfor\s+(?:[\w, (]*\b)?{n}\b[^\n]*\bin\b",
        rf"\bas\s+{n}\b",
        rf"\bdef\s+\w+\([^)]*\b{n}\b",
        rf"\blet\s+(?:mut\s+)?{n}\b",
        rf"\|[^|\n]*\b{n}\b[^|\n]*\|",
        rf"(?<![\w.]){n}\s*,[^\n]*(?<!=)=(?!=)",  # tuple unpacking: a, name = ...
        rf",\s*{n}\s*(?:,[^\n]*)?(?<!=)=(?!=)",
    ]
    return any(re.search(p, text) for p in patterns)


def _cursors(line: str) -> list[int]:
    """Token starts after the first token (never at the indentation)."""
    starts = [m.start() for m in TOKEN.finditer(line)]
    return starts[1:]


def _multi_line_bodies(lines: list[str], code: list[bool], prose: list[bool], language: str):
    """(first line, last line) of block bodies of 2-6 code lines."""
    indent = lambda s: len(s) - len(s.lstrip())
    for i, header in enumerate(lines[:-2]):
        h = header.rstrip()
        if prose[i]:
            continue
        if language == "rust" and not h.endswith("{"):
            continue
        if language == "python" and (not h.endswith(":") or h.lstrip().startswith("#")):
            continue
        base = indent(header)
        j = i + 1
        while j < len(lines) and lines[j].strip() and indent(lines[j]) > base:
            j += 1
        last = j - 1
        if last <= i:
            continue
        body = range(i + 1, last + 1)
        if not (2 <= len(body) <= 6):
            continue
        if language == "rust":
            # the body must end at this block's own closing line
            if j >= len(lines) or not lines[j].strip().startswith("}") or indent(lines[j]) != base:
                continue
        elif j < len(lines) and lines[j].strip() and indent(lines[j]) > base:
            continue
        if not code[i + 1] or sum(code[k] for k in body) < len(body) - 1:
            continue  # starts with a comment/docstring, or is mostly non-code
        if any('"""' in lines[k] or "'''" in lines[k] for k in body):
            continue
        yield i + 1, last


def candidates(package: pkgs.Package, root: Path) -> dict[str, list[Case]]:
    """Every candidate case of the package, per kind, in a fixed order (before sampling)."""
    language = package.language
    files = sorted(
        p for p in (root / package.source).rglob(f"*{package.extension}") if p.is_file()
    )
    texts = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        if "\r" in text or len(text) > 300_000:
            continue
        texts[path.relative_to(root).as_posix()] = text
    defs = {rel: definitions(text, language) for rel, text in texts.items()}
    defined_in: dict[str, list[str]] = {}
    for rel, names in defs.items():
        for name in names:
            defined_in.setdefault(name, []).append(rel)
    out: dict[str, list[Case]] = {k: [] for k in KINDS}
    for rel, text in texts.items():
        rng = random.Random(f"cursor:{package.key}:{rel}")
        lines = text.split("\n")
        code, prose = code_lines(text, language)
        # identifiers this file does not define but exactly 1-3 other files do
        used = set(IDENT.findall(text))
        foreign = {
            name
            for name, where in defined_in.items()
            if name in used
            and rel not in where
            and len(where) <= 3
            and len(name) >= 4
            and name not in COMMON[language]
            and not _bound_locally(text, name, language)
        }
        imported = {
            name
            for line in lines
            if re.match(r"\s*(from\s+\S+\s+)?import\s", line)
            for name in IDENT.findall(line.split("import", 1)[1])
        }
        for i, line in enumerate(lines):
            if not code[i]:
                continue
            cursors = [c for c in _cursors(line) if _single_line_ok(language, line[:c], line[c:].rstrip())]
            if cursors:
                c = rng.choice(cursors)
                out["single-line"].append(_case(package, rel, "single-line", i, c, line[c:].rstrip(), line))
            for m in IDENT.finditer(line):
                if m.group() not in foreign or not _is_reference(language, line, m, imported):
                    continue
                # the identifier must not be in the file anywhere else either as a definition
                options = [c for c in cursors if c <= m.start()]
                if not options:
                    continue
                c = rng.choice(options)
                case = _case(package, rel, "cross-file", i, c, line[c:].rstrip(), line)
                case.identifier = m.group()
                case.defined_in = sorted(defined_in[m.group()])
                out["cross-file"].append(case)
                break
        for first, last in _multi_line_bodies(lines, code, prose, language):
            c = len(lines[first]) - len(lines[first].lstrip())
            middle = "\n".join([lines[first][c:].rstrip()] + [l.rstrip() for l in lines[first + 1 : last + 1]])
            if lines[first][c:] != lines[first][c:].rstrip() or any(l != l.rstrip() for l in lines[first + 1 : last + 1]):
                continue  # trailing whitespace would make the hole ambiguous
            out["multi-line"].append(_case(package, rel, "multi-line", first, c, middle, lines[first]))
    # open files: up to 3 other files of the same folder, as if recently edited (seeded)
    for kind in KINDS:
        for case in out[kind]:
            folder = str(Path(case.path).parent)
            neighbours = sorted(r for r in texts if r != case.path and str(Path(r).parent) == folder)
            rng = random.Random(f"open:{package.key}:{case.path}:{case.line}:{kind}")
            case.open_files = rng.sample(neighbours, min(3, len(neighbours)))
    return out


def _case(package, rel, kind, line_no, column, middle, line) -> Case:
    return Case(
        id="",
        package=package.key,
        language=package.language,
        kind=kind,
        path=rel,
        line=line_no,
        column=column,
        column_utf16=utf16_len(line[:column]),
        middle=middle,
    )


def build(packages: list[pkgs.Package], per_kind: int, seed: int = 0) -> list[Case]:
    """`per_kind` cases of each kind, spread round-robin over the packages; deterministic."""
    pools: dict[str, dict[str, list[Case]]] = {k: {} for k in KINDS}
    for package in packages:
        root = pkgs.fetch(package)
        for kind, found in candidates(package, root).items():
            rng = random.Random(f"{seed}:{kind}:{package.key}")
            rng.shuffle(found)
            # at most one case per (file, line) and spread over files: round-robin over files
            by_file: dict[str, list[Case]] = {}
            for case in found:
                by_file.setdefault(case.path, []).append(case)
            order = sorted(by_file, key=lambda f: rng.random())
            spread, seen = [], set()
            while any(by_file.values()):
                for f in order:
                    if by_file[f]:
                        case = by_file[f].pop(0)
                        if case.identifier and case.identifier in seen:
                            continue  # one cross-file case per identifier and package
                        seen.add(case.identifier)
                        spread.append(case)
            pools[kind][package.key] = spread
    cases = []
    for kind in KINDS:
        taken = 0
        index = {key: 0 for key in pools[kind]}
        while taken < per_kind and any(index[k] < len(pools[kind][k]) for k in index):
            for key in index:
                if taken < per_kind and index[key] < len(pools[kind][key]):
                    case = pools[kind][key][index[key]]
                    index[key] += 1
                    case.id = f"{kind}/{key}/{taken:03d}"
                    cases.append(case)
                    taken += 1
        if taken < per_kind:
            raise SystemExit(f"only {taken} {kind} cases available, {per_kind} asked for")
    # group by package so a workspace copy serves consecutive cases
    order = {p.key: i for i, p in enumerate(packages)}
    cases.sort(key=lambda c: (order[c.package], KINDS.index(c.kind), c.id))
    return cases


def write_jsonl(cases: list[Case], path: Path) -> None:
    with open(path, "w") as f:
        for case in cases:
            f.write(json.dumps(asdict(case)) + "\n")


def read_jsonl(path: Path) -> list[Case]:
    return [Case(**json.loads(line)) for line in open(path) if line.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=16, help="cases per kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="only the packages marked smoke")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--stats", action="store_true", help="print how many candidates each package has")
    args = ap.parse_args()
    packages = [p for p in pkgs.load() if p.smoke or not args.smoke]
    if args.stats:
        for p in packages:
            found = candidates(p, pkgs.fetch(p))
            print(p.key, {k: len(v) for k, v in found.items()})
    cases = build(packages, args.cases, args.seed)
    if args.out:
        write_jsonl(cases, args.out)
    else:
        for case in cases:
            print(json.dumps(asdict(case)))
    print(Counter((c.kind, c.package) for c in cases), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
