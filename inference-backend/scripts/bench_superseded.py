#!/usr/bin/env python3
"""What an editor's superseded requests leave behind: time to first token of the next keystroke's
prompt after the previous request's client left, against a cold prompt of the same size.

    python inference-backend/scripts/bench_superseded.py --url http://127.0.0.1:8123 [--repeats 3]

Each repeat uses fresh text (so nothing is cached from an earlier one), cut from this repo's
sources, about --chars characters (~1,000 tokens at the default):
- cold: the prompt, read to [DONE];
- closed at first token: a prompt, its stream closed at the first text chunk, then the same
  prompt plus `let x = ` (the next keystrokes);
- closed mid-prefill: a prompt, its connection closed --mid-s seconds in (before its first
  token on a CPU), then the same plus `let x = `;
- warmed: the prompt with max_tokens 0, then the same plus `let x = `.
Prints a table of medians with the cached tokens the server reported.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def corpus() -> str:
    files = sorted((ROOT / "lsp-server" / "src").rglob("*.rs")) + sorted((ROOT / "inference-backend" / "src").rglob("*.rs"))
    return "\n".join(f.read_text() for f in files)


class Client:
    def __init__(self, url: str):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port or 80

    def start(self, prompt: str, max_tokens: int = 16, stream: bool = True) -> socket.socket:
        body = json.dumps({"prompt": prompt, "suffix": "\n}\n", "max_tokens": max_tokens, "temperature": 0,
                           "stream": stream, "stream_options": {"include_usage": True}}).encode()
        s = socket.create_connection((self.host, self.port))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return s

    def run(self, prompt: str, max_tokens: int = 16) -> tuple[float | None, dict]:
        """(time to first text, usage) of a request read to its end."""
        started = time.monotonic()
        s = self.start(prompt, max_tokens, stream=max_tokens > 0)
        buf, first = b"", None
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
            if first is None and b'"finish_reason":null' in buf:
                first = time.monotonic() - started
            if b"[DONE]" in buf or (max_tokens == 0 and buf.rstrip().endswith(b"}")):
                break
        s.close()
        text = buf.decode(errors="replace")
        usages = []
        for line in text.split("\n"):
            line = line.strip()
            if line.startswith("data: {") or line.startswith("{"):
                try:
                    chunk = json.loads(line[5:] if line.startswith("data:") else line)
                except json.JSONDecodeError:
                    continue
                if "usage" in chunk:
                    usages.append(chunk["usage"])
        return first, usages[-1] if usages else {}

    def close_at_first_token(self, prompt: str) -> None:
        s = self.start(prompt, 64)
        buf = b""
        while b'"finish_reason":null' not in buf:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        s.close()

    def close_after(self, prompt: str, seconds: float) -> None:
        s = self.start(prompt, 64)
        time.sleep(seconds)
        s.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8123")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chars", type=int, default=3600)
    ap.add_argument("--mid-s", type=float, default=1.5)
    args = ap.parse_args()
    client = Client(args.url)
    text = corpus()
    rows: dict[str, list[tuple[float, int, int]]] = {k: [] for k in ("cold", "closed at first token", "closed mid-prefill", "warmed (max_tokens 0)")}
    at = 0

    def fresh() -> str:
        nonlocal at
        piece = text[at:at + args.chars]
        at += args.chars + 100
        return piece

    for _ in range(args.repeats):
        ttft, usage = client.run(fresh())
        rows["cold"].append((ttft, usage.get("prompt_tokens", 0), usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)))
        prompt = fresh()
        client.close_at_first_token(prompt)
        ttft, usage = client.run(prompt + "let x = ")
        rows["closed at first token"].append((ttft, usage.get("prompt_tokens", 0), usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)))
        prompt = fresh()
        client.close_after(prompt, args.mid_s)
        ttft, usage = client.run(prompt + "let x = ")
        rows["closed mid-prefill"].append((ttft, usage.get("prompt_tokens", 0), usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)))
        prompt = fresh()
        client.run(prompt, max_tokens=0)
        ttft, usage = client.run(prompt + "let x = ")
        rows["warmed (max_tokens 0)"].append((ttft, usage.get("prompt_tokens", 0), usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)))
    cold = statistics.median(r[0] for r in rows["cold"])
    print(f"| before the follow-up | prompt tokens | cached tokens | TTFT (median of {args.repeats}) | of cold |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rows.items():
        ttft = statistics.median(v[0] for v in values)
        print(f"| {name} | {statistics.median(v[1] for v in values):.0f} | {statistics.median(v[2] for v in values):.0f} | "
              f"{ttft:.3f} s | {100 * ttft / cold:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
