"""The reference systems every change of the context engine is judged against, built here in
the harness (not by ghostline-lsp, so tuning the LSP cannot move them) and sent straight to the
same ghostline-serve:

- `plain`: current-file fill-in-the-middle. The lines before the cursor up to 3/4 of the budget,
  the lines after it up to the rest (at most 256 tokens), Qwen's FIM markers, nothing else.
- `naive`: `plain` plus the most similar 20-line windows of the package's other files (Jaccard
  over identifier sets against the 20 lines above the cursor, windows every 10 lines), up to 40%
  of the budget, in the repo-level format (`<|repo_name|>`, `<|file_sep|>path`), the most
  similar nearest the current file. The current file gets what the windows leave.
- `naive-full` (issue 28's bar, a fixed budget that does not follow `--context-tokens`): the
  current file's FIM prompt with up to 1,024 tokens of prefix and up to 256 of suffix (whole
  lines, as `plain`), plus the same ranked windows (a window overlapping one already chosen in
  the same file skipped) added in rank order while they fit in 512 tokens (one that does not fit
  is skipped and the next tried), in `naive`'s repo-level format, the most similar last.

Budgets are counted with the model's own tokenizer, so `budget` is what the model reads.
Completions are cut by `cut` (below), a rule any plugin could apply: the editor's view of the
cursor decides, never the answer.
"""
from __future__ import annotations

import json
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
WINDOW_LINES = 20
WINDOW_STRIDE = 10
QUERY_LINES = 20
RETRIEVED_SHARE = 0.4
SUFFIX_MAX_TOKENS = 256
# naive-full: fixed budgets, whatever --context-tokens says.
FULL_PREFIX_TOKENS = 1024
FULL_SUFFIX_TOKENS = 256
FULL_RETRIEVED_TOKENS = 512
FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE = "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"
REPO_NAME, FILE_SEP, END = "<|repo_name|>", "<|file_sep|>", "<|endoftext|>"
STOPS = [END, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FILE_SEP, REPO_NAME, "<|im_end|>"]
SKIP_DIRS = {".git", "target", "node_modules", "__pycache__", "testdata", "vendor"}


class Tokens:
    """Token counts with the model's tokenizer (tokenizer.json of the model directory)."""

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))

    def counts(self, pieces: list[str]) -> list[int]:
        if not pieces:
            return []
        return [len(e.ids) for e in self.tokenizer.encode_batch(pieces, add_special_tokens=False)]

    def count(self, text: str) -> int:
        return self.counts([text])[0] if text else 0


def _prefix_lines(tokens: Tokens, before: str, budget: int) -> str:
    """The cursor's line up to the cursor, and whole lines above it while they fit."""
    lines = before.split("\n")
    cursor_line = lines.pop()
    used = tokens.count(cursor_line)
    keep: list[str] = []
    # Cost of the lines nearest the cursor first; never more than the budget could hold.
    window = lines[-(budget + 1) :] if budget > 0 else []
    costs = tokens.counts([l + "\n" for l in window])
    for line, cost in zip(reversed(window), reversed(costs)):
        if used + cost > budget:
            break
        used += cost
        keep.append(line)
    return "".join(l + "\n" for l in reversed(keep)) + cursor_line


def _suffix_lines(tokens: Tokens, after: str, budget: int) -> str:
    """The rest of the cursor's line, and whole lines below it while they fit."""
    lines = after.split("\n")
    rest = lines[0]
    out = rest
    used = tokens.count(rest)
    window = lines[1 : budget + 1]
    costs = tokens.counts(["\n" + l for l in window])
    for line, cost in zip(window, costs):
        if used + cost > budget:
            break
        used += cost
        out += "\n" + line
    return out


def current_file(tokens: Tokens, holed: str, cursor: int, budget: int) -> tuple[str, str]:
    suffix_budget = min(SUFFIX_MAX_TOKENS, budget // 4)
    suffix = _suffix_lines(tokens, holed[cursor:], suffix_budget)
    used = tokens.count(suffix)
    prefix = _prefix_lines(tokens, holed[:cursor], budget - used)
    return prefix, suffix


def plain_prompt(tokens: Tokens, holed: str, cursor: int, budget: int) -> str:
    prefix, suffix = current_file(tokens, holed, cursor, budget)
    return f"{FIM_PREFIX}{prefix}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}"


@dataclass
class Window:
    path: str
    start: int
    text: str
    score: float


def _source_files(root: Path, extension: str, current: Path) -> list[Path]:
    out = []
    for path in sorted(root.rglob(f"*{extension}")):
        rel = path.relative_to(root)
        if path == current or not path.is_file() or any(p in SKIP_DIRS or p.startswith(".") for p in rel.parts[:-1]):
            continue
        out.append(path)
    return out


def similar_windows(root: Path, current: Path, extension: str, holed: str, cursor: int) -> list[Window]:
    query = set(IDENT.findall("\n".join(holed[:cursor].split("\n")[-QUERY_LINES:])))
    if not query:
        return []
    windows = []
    for path in _source_files(root, extension, current):
        try:
            lines = path.read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError):
            continue
        for start in range(0, max(1, len(lines) - WINDOW_LINES + WINDOW_STRIDE), WINDOW_STRIDE):
            text = "\n".join(lines[start : start + WINDOW_LINES])
            ids = set(IDENT.findall(text))
            if not ids:
                continue
            score = len(query & ids) / len(query | ids)
            if score > 0:
                windows.append(Window(path.relative_to(root).as_posix(), start, text, score))
    windows.sort(key=lambda w: (-w.score, w.path, w.start))
    return windows


def _window_text(window: Window) -> str:
    return f"{FILE_SEP}{window.path}\n{window.text}\n"


def _overlaps(window: Window, taken: dict[str, list[int]]) -> bool:
    """Whether the window shares a line with a window already chosen in the same file."""
    return any(abs(window.start - s) < WINDOW_LINES for s in taken.get(window.path, []))


def _repo_prompt(root_name: str, chosen: list[Window], current_rel: str, prefix: str, suffix: str) -> str:
    """Qwen's repo-level format: the chosen windows (most similar first in `chosen`) placed in
    reverse, so the most similar is last, nearest the cursor; then the current file's FIM."""
    out = f"{REPO_NAME}{root_name}\n"
    for window in reversed(chosen):
        out += _window_text(window)
    return out + f"{FILE_SEP}{current_rel}\n{FIM_PREFIX}{prefix}{FIM_SUFFIX}{suffix}{FIM_MIDDLE}"


def naive_prompt(tokens: Tokens, root: Path, current_rel: str, extension: str, holed: str, cursor: int,
                 budget: int) -> str:
    retrieved_budget = int(budget * RETRIEVED_SHARE)
    chosen: list[Window] = []
    used = tokens.count(f"{REPO_NAME}{root.name}\n{FILE_SEP}{current_rel}\n")
    taken: dict[str, list[int]] = {}
    for window in similar_windows(root, root / current_rel, extension, holed, cursor):
        if _overlaps(window, taken):
            continue  # overlaps a window already chosen
        cost = tokens.count(_window_text(window))
        if used + cost > retrieved_budget:
            if used > retrieved_budget * 0.9:
                break
            continue
        used += cost
        chosen.append(window)
        taken.setdefault(window.path, []).append(window.start)
    prefix, suffix = current_file(tokens, holed, cursor, budget - used)
    return _repo_prompt(root.name, chosen, current_rel, prefix, suffix)


def full_windows(tokens: Tokens, windows: list[Window], budget: int = FULL_RETRIEVED_TOKENS) -> list[Window]:
    """naive-full's pick, most similar first: in rank order, a window overlapping one already
    chosen in its file is skipped, one whose `<|file_sep|>path\ntext\n` does not fit in what is
    left of `budget` is skipped and the next tried."""
    chosen: list[Window] = []
    taken: dict[str, list[int]] = {}
    used = 0
    batch = 256  # token counts in batches: the tokenizer is much faster on many texts at once
    for at in range(0, len(windows), batch):
        if used >= budget:
            break
        part = windows[at : at + batch]
        for window, cost in zip(part, tokens.counts([_window_text(w) for w in part])):
            if _overlaps(window, taken) or used + cost > budget:
                continue
            used += cost
            chosen.append(window)
            taken.setdefault(window.path, []).append(window.start)
    return chosen


def naive_full_prompt(tokens: Tokens, root: Path, current_rel: str, extension: str, holed: str,
                      cursor: int) -> str:
    """Issue 28's naive-full: up to 1,024 tokens of prefix and 256 of suffix of the current file
    (whole lines), and up to 512 tokens of windows (`full_windows`) in the repo-level format."""
    chosen = full_windows(tokens, similar_windows(root, root / current_rel, extension, holed, cursor))
    suffix = _suffix_lines(tokens, holed[cursor:], FULL_SUFFIX_TOKENS)
    prefix = _prefix_lines(tokens, holed[:cursor], FULL_PREFIX_TOKENS)
    return _repo_prompt(root.name, chosen, current_rel, prefix, suffix)


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def cut(completion: str, holed: str, cursor: int) -> str:
    """What a plain plugin shows: code before the cursor on its line asks for the rest of that
    line; only indentation before it asks for a block, which ends at the first line indented
    less than the cursor or at a Markdown fence."""
    for stop in STOPS:
        completion = completion.split(stop, 1)[0]
    line_start = holed.rfind("\n", 0, cursor) + 1
    before = holed[line_start:cursor]
    if before.strip():
        return completion.split("\n", 1)[0].rstrip()
    width = _indent(before)
    lines = completion.split("\n")
    # The line already holds the indentation: a model that writes it again is not indenting more.
    out = [lines[0].lstrip()]
    for line in lines[1:]:
        if line.strip() and (_indent(line) < width or line.strip().startswith("```")):
            break
        out.append(line)
    return "\n".join(out).rstrip()


def complete(url: str, model: str, prompt: str, max_tokens: int, timeout: float = 600) -> dict:
    """One greedy completion from ghostline-serve's /v1/completions: the text and the usage."""
    body = {"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "stream": False,
            "stop": STOPS[:6]}
    request = urllib.request.Request(f"{url}/v1/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.load(response)
    return {"text": answer["choices"][0]["text"], "usage": answer.get("usage") or {}}
