"""Deterministic fill-in-the-middle cases from the pinned packages.

Three kinds:
- single-line: the cursor after some of a code line's tokens; the middle is the rest of the line.
- multi-line: a whole block body of 2-6 lines (after a line ending in `{` for Rust and Go, `:`
  for Python); the cursor sits after the first body line's indentation.
- cross-file: like single-line, but the middle holds an identifier defined (`def`/`class`;
  `fn`/`struct`/`enum`/`trait`/`const`/`type`; Go's top-level `func`/method/`type`/`const`/`var`,
  grouped blocks included) in another file of the package and nowhere in the current one.

Cursor positions are chosen where ghostline-lsp's `multiline: auto` asks for what the kind
expects: single-line cursors never follow `{ ( [ =>` (or `:` in Python), multi-line ones sit
after indentation only. Comments, docstrings (Go: multi-line raw strings), blank lines,
attributes, imports, `package` lines and trivial lines (`}`, `pass`, `else:` ...) are never
holes. Go cases come from the package's own folder only (no `_test.go`, no subfolders).

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
    # top level only: `func Name`, `func (r *T) Name`, `type/const/var Name` (grouped blocks: below)
    "go": re.compile(r"^(?:func\s*(?:\([^)]*\)\s*)?|(?:type|const|var)\s+)([A-Za-z_]\w*)", re.M),
}
GO_OPERATORS = {
    ":=", "==", "!=", "<=", ">=", "&&", "||", "++", "--", "<-", "+=", "-=", "*=", "/=", "%=", "|=",
    "&=", "^=", "<<", ">>", "..", "&^",
}
GO_GROUP = re.compile(r"^(?:type|const|var)\s*\(\s*(?://.*)?$")  # `const (` ... `)`
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
    "go": {
        "String", "Error", "New", "Len", "Less", "Swap", "ServeHTTP", "init", "main", "Close",
        "Write", "Read", "Reset", "Get", "Set", "Name", "Value", "Type", "Kind", "Next", "Err",
        "Unwrap", "Is", "As", "Add", "Del", "Lock", "Unlock", "Flush", "WriteString", "Format",
        "MarshalText", "UnmarshalText", "MarshalJSON", "UnmarshalJSON", "Bytes", "Copy", "Clone",
        "Equal", "Validate", "Init", "Run", "Handler", "Options", "Config", "Context",
        # predeclared: a method may be named `string`, but `[]string{` is the builtin
        "bool", "byte", "rune", "string", "error", "int", "int8", "int16", "int32", "int64",
        "uint", "uint8", "uint16", "uint32", "uint64", "uintptr", "float32", "float64", "any",
        "complex64", "complex128", "comparable", "append", "cap", "clear", "close", "complex",
        "copy", "delete", "imag", "len", "make", "max", "min", "new", "panic", "print", "println",
        "real", "recover", "nil", "true", "false", "iota",
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
GO_GENERIC_METHODS = GENERIC_METHODS | {
    "String", "Error", "Len", "Less", "Swap", "Lock", "Unlock", "RLock", "RUnlock", "Add", "Get",
    "Set", "Del", "Done", "Wait", "Write", "Read", "WriteString", "WriteByte", "WriteRune",
    "Flush", "Close", "Reset", "Name", "Value", "Type", "Kind", "Next", "Err", "Unwrap",
}
TQ, TQ1 = '"' * 3, "'" * 3  # triple quotes
TRIVIAL = {
    "}", "};", "})", "});", ")", "),", ");", "]", "],", "{", "(", "[", "pass", "else:", "try:",
    "finally:", "} else {", "else {", "return", "return;", "break", "break;", "continue",
    "continue;", "...", "*/", "Ok(())", "None", "self", "}))", "})?", ")?", "))", "});",
}
GO_TRIVIAL = TRIVIAL | {
    "default:", "}()", "return nil", "return err", "return true", "return false", "return nil, err",
    "if err != nil {", "return \"\"", "return 0", "return nil, nil",
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
    if language == "go":  # `*p = x` is code; ` * text` and ` */` continue a block comment
        return stripped.startswith(("//", "/*", "*/", "* ")) or stripped == "*"
    return stripped.startswith(("//", "/*", "*", "#[", "#!["))


def _go_mask(line: str) -> str:
    """The line with the insides of Go string/rune literals and a trailing `//` comment blanked
    (same length), so that a word in a string is never taken for an identifier."""
    out, i, n = list(line), 0, len(line)
    while i < n:
        if line.startswith("//", i):
            out[i:] = " " * (n - i)
            break
        if line[i] in "\"'`":
            quote, i = line[i], i + 1
            while i < n and line[i] != quote:
                step = 2 if line[i] == "\\" and quote != "`" else 1
                out[i : i + step] = " " * len(out[i : i + step])
                i += step
        i += 1
    return "".join(out)


def _go_raw_lines(lines: list[str]) -> list[bool]:
    """Per line: does a multi-line raw string (`...`) or block comment cover part of it? Such
    lines are text (templates, scripts), like Python docstrings. Balanced backticks on one line
    (struct tags) don't count."""
    out, state = [], None  # None | "`" | "*/"
    for line in lines:
        started, i, n = state, 0, len(line)
        while i < n:
            if state == "`":
                if line[i] == "`":
                    state = None
                i += 1
            elif state == "*/":
                if line.startswith("*/", i):
                    state, i = None, i + 2
                else:
                    i += 1
            elif line.startswith("//", i):
                break
            elif line.startswith("/*", i):
                state, i = "*/", i + 2
            elif line[i] == "`":
                state, i = "`", i + 1
            elif line[i] in "\"'":
                quote, i = line[i], i + 1
                while i < n and line[i] != quote:
                    i += 2 if line[i] == "\\" else 1
                i += 1
            else:
                i += 1
        out.append(started is not None or state is not None)
    return out


def code_lines(text: str, language: str) -> tuple[list[bool], list[bool]]:
    """Per line: is it non-trivial code (not blank, comment, docstring, attribute, import)?
    And is it prose (blank, comment, docstring)?"""
    result, prose = [], []
    in_doc = None  # the open triple quote, Python only
    in_import = False  # inside Go's `import (` ... `)`
    raw = _go_raw_lines(text.split("\n")) if language == "go" else None
    trivial = GO_TRIVIAL if language == "go" else TRIVIAL
    for i, line in enumerate(text.split("\n")):
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
        elif language == "go":
            if raw[i]:
                ok, is_prose = False, True
            elif in_import:
                ok = False
                in_import = not stripped.startswith(")")
            elif re.match(r"import\s*\(", stripped):
                ok, in_import = False, ")" not in stripped
            elif re.match(r"(package|import)\b", stripped):
                ok = False
        else:
            if re.match(r"(pub(\([\w:]+\))?\s+)?(use|mod|extern\s+crate)\b", stripped):
                ok = False
        if (
            not stripped
            or _is_comment(stripped, language)
            or stripped in trivial
            or len(stripped) < 6
            or len(line) > 120
        ):
            ok = False
        result.append(ok)
        prose.append(is_prose)
    return result, prose


def definitions(text: str, language: str) -> set[str]:
    if language == "go":
        return _go_definitions(text)
    return {m.group(1) for m in DEFINITIONS[language].finditer(text)} - {"fn"}


def _go_definitions(text: str) -> set[str]:
    names = {m.group(1) for m in DEFINITIONS["go"].finditer(text)}
    group = False
    for line in text.split("\n"):
        if group:
            if line.startswith(")"):
                group = False
            elif m := re.match(r"\t([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)(?=[\s=]|$)", line):
                names.update(IDENT.findall(m.group(1)))
        elif GO_GROUP.match(line):
            group = True
    return names - {"_"}


def _go_decl_lines(lines: list[str]) -> set[int]:
    """Lines inside a `struct {` / `interface {` body: their first name declares a field or a
    method, it does not refer to one."""
    out = set()
    for i, line in enumerate(lines):
        if not re.search(r"\b(?:struct|interface)\s*\{\s*$", line):
            continue
        base = len(line) - len(line.lstrip())
        for j in range(i + 1, len(lines)):
            stripped = lines[j].strip()
            if stripped.startswith("}") and len(lines[j]) - len(lines[j].lstrip()) <= base:
                break
            out.add(j)
    return out


def _single_line_ok(language: str, before: str, middle: str) -> bool:
    before_code = before.strip()
    if not before_code:
        return False  # only indentation before the cursor: the LSP would go multi-line
    if before.rstrip().endswith(("{", "(", "[", "=>")) or (language == "python" and before.rstrip().endswith(":")):
        return False  # ghostline-lsp's auto mode would ask for a multi-line suggestion here
    if language == "go" and before[-1:] + middle[:1] in GO_OPERATORS:
        return False  # between the characters of `:=`, `!=`, `+=` ...: nobody pauses there
    core = middle.strip()
    if len(core) < 4 or len(TOKEN.findall(core)) < 2 or len(middle) > 100 or not IDENT.search(core):
        return False
    return True


def _is_reference(language: str, line: str, m: re.Match, imported: set[str], decl_line: bool = False) -> bool:
    """Does this occurrence plausibly refer to the other file's definition (rather than to a
    local, a parameter or a field that happens to share its name)?"""
    before, after = line[: m.start()], line[m.end() :]
    name = m.group()
    if language == "go":
        return _is_go_reference(before, name, after, decl_line, imported)
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


def _is_go_reference(before: str, name: str, after: str, decl_line: bool, imported: set[str]) -> bool:
    """Go: same-package names are used unqualified, so like Rust: a type or composite literal
    (uppercase), a call, or a method call (not `pkg.Name(` of an imported package); never a
    binding, a key, a field or a parameter."""
    if before.endswith("."):
        qualifier = re.search(r"(?<![\w.])([A-Za-z_]\w*)\.$", before)
        if qualifier and qualifier.group(1) in imported:
            return False  # another package's name
        return after.startswith("(") and name not in GO_GENERIC_METHODS
    if decl_line and not before.strip():
        return False  # a struct field or interface method declaration
    if re.match(r"\s*(?::=|,[\w\s,]*:=)", after):
        return False  # `name :=`, `name, err :=`
    if re.match(r"\s*:", after) and not re.match(r"\s*case\b", before):
        return False  # a key `Name: value`, a label (a `case Name:` is a reference)
    if re.search(r"\b(?:func|type|const|var)\s+$", before) or re.match(r"\s*func\s*\([^)]*\)\s*$", before):
        return False  # a definition (function, method, type, constant, variable)
    if re.search(r"\bvar\s+[\w\s,]*$", before):
        return False  # `var a, name T`
    if re.search(r"\bfunc\b", before) and re.search(r"[(,]\s*$", before) and re.match(r"\s*(?:,|\s[\w*\[.])", after):
        return False  # a parameter or receiver name
    return name[0].isupper() or after.startswith(("(", "{"))


def _go_imports(lines: list[str]) -> set[str]:
    """The names a Go file's imports bind: the alias, or the path's last element (`yaml.v3` →
    `yaml`, `go-isatty` → `isatty`, `chi/v5` → `chi`)."""
    names, block = set(), False
    for line in lines:
        stripped = line.strip()
        if block:
            if stripped.startswith(")"):
                block = False
                continue
            spec = stripped
        elif re.match(r"import\s*\(", stripped):
            block = True
            spec = stripped.split("(", 1)[1]
        elif stripped.startswith("import "):
            spec = stripped[len("import ") :]
        else:
            continue
        m = re.match(r'(?:([\w.]+)\s+)?"([^"]+)"', spec.strip())
        if not m:
            continue
        alias, path = m.groups()
        if alias is None:
            parts = path.split("/")
            last = parts[-2] if re.fullmatch(r"v\d+", parts[-1]) and len(parts) > 1 else parts[-1]
            alias = re.sub(r"^go-", "", last).split(".")[0].replace("-", "_")
        if alias not in (".", "_"):
            names.add(alias)
    return names


def _bound_locally(text: str, name: str, language: str) -> bool:
    """Is `name` also a local of this file (assigned, a parameter, a loop variable, an `as`
    alias, a field)? Then an occurrence may well mean that local, not the other definition."""
    n = re.escape(name)
    patterns = [
        rf"(?<![\w.]){n}\s*(?:=(?!=)|:(?!:))" if language != "go"
        else rf"(?m)^(?![ \t]*case\b).*(?<![\w.]){n}\s*(?:=(?!=)|:)",  # not `case Name:`
        rf"\bfor\s+(?:[\w, (]*\b)?{n}\b[^\n]*\bin\b",
        rf"\bas\s+{n}\b",
        rf"\bdef\s+\w+\([^)]*\b{n}\b",
        rf"\blet\s+(?:mut\s+)?{n}\b",
        rf"\|[^|\n]*\b{n}\b[^|\n]*\|",
        rf"(?<![\w.]){n}\s*,[^\n]*(?<!=)=(?!=)",  # tuple unpacking: a, name = ...
        rf",\s*{n}\s*(?:,[^\n]*)?(?<!=)=(?!=)",
    ]
    if language == "go":
        patterns += [
            rf"\bvar\s+(?:\w+\s*,\s*)*{n}\b",  # var name T / var a, name = ...
            rf",\s*{n}\s*(?:,[^\n]*)?:=",  # a, name := ... / for _, name := range
            rf"\bfunc\b[^\n]*?[(,]\s*{n}\s*(?:,|\s+[\w*\[.])",  # parameter or receiver
            rf"(?m)^[ \t]+{n}[ \t]+[*\[\]\w.]",  # struct field / parameter on its own line
        ]
    return any(re.search(p, text) for p in patterns)


def _cursors(line: str) -> list[int]:
    """Token starts after the first token (never at the indentation)."""
    starts = [m.start() for m in TOKEN.finditer(line)]
    return starts[1:]


def _multi_line_bodies(lines: list[str], code: list[bool], prose: list[bool], language: str):
    """(first line, last line) of block bodies of 2-6 code lines."""
    indent = lambda s: len(s) - len(s.lstrip())  # Go indents with tabs: one character each
    raw = _go_raw_lines(lines) if language == "go" else None
    for i, header in enumerate(lines[:-2]):
        h = header.rstrip()
        if prose[i]:
            continue
        if language in ("rust", "go") and not h.endswith("{"):
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
        if language in ("rust", "go"):
            # the body must end at this block's own closing line
            if j >= len(lines) or not lines[j].strip().startswith("}") or indent(lines[j]) != base:
                continue
        elif j < len(lines) and lines[j].strip() and indent(lines[j]) > base:
            continue
        if not code[i + 1] or sum(code[k] for k in body) < len(body) - 1:
            continue  # starts with a comment/docstring, or is mostly non-code
        if any('"""' in lines[k] or "'''" in lines[k] for k in body):
            continue
        if raw is not None and any(raw[k] for k in range(i, last + 2) if k < len(lines)):
            continue  # Go: part of a multi-line raw string or block comment
        yield i + 1, last


def candidates(package: pkgs.Package, root: Path) -> dict[str, list[Case]]:
    """Every candidate case of the package, per kind, in a fixed order (before sampling)."""
    language = package.language
    if language == "go":
        # one Go package: the folder's own files, no tests, no subfolders (examples, testdata)
        files = sorted(
            p for p in (root / (package.source or ".")).glob("*.go")
            if p.is_file() and not p.name.endswith("_test.go")
        )
    else:
        files = sorted(
            p for p in (root / package.source).rglob(f"*{package.extension}") if p.is_file()
        )
    texts = {}
    for path in files:
        text = path.read_text(encoding="utf-8")
        if "\r" in text or len(text) > 300_000:
            continue
        if language == "go" and re.search(r"^// Code generated .* DO NOT EDIT\.$", text, re.M):
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
        decl = _go_decl_lines(lines) if language == "go" else set()
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
        imported = _go_imports(lines) if language == "go" else {
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
            scan = _go_mask(line) if language == "go" else line
            for m in IDENT.finditer(scan):
                if m.group() not in foreign or not _is_reference(language, scan, m, imported, i in decl):
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
    ap.add_argument("--half", choices=(*pkgs.HALVES, "all"), default="all",
                    help="only the packages of this half of packages.toml (default all)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--stats", action="store_true", help="print how many candidates each package has")
    args = ap.parse_args()
    packages = [p for p in pkgs.load() if (p.smoke or not args.smoke) and args.half in ("all", p.half)]
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
