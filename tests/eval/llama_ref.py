#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) on a GGUF behind the slice of ghostline-serve's HTTP API that the
evaluation's baselines use, so `run.py --reference-url` can send the very same prompts to it.

    python tests/eval/llama_ref.py --gguf ~/.cache/ghostline/dl/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --port 8812

`POST /v1/completions` takes `prompt` (the FIM template already applied; special tokens parsed as
such), `max_tokens`, `stop`; decoding is greedy (top-k 1, no repetition penalty) and ends at an
end-of-generation token or a stop string, like ghostline-serve's. `GET /v1/models` names the
model. One request at a time, 2 threads; llama-cpp-python from requirements-bench.txt
(`setup_python.sh --bench`). For measurements only: it is not part of the product.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# ghostline-serve's stop ids for Qwen2.5-Coder (fetch_default_model.STOP_IDS).
STOP_IDS = {151643, 151645, 151659, 151660, 151661, 151662, 151663, 151664}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--port", type=int, default=8812)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=4096)
    args = ap.parse_args()

    from llama_cpp import Llama

    llm = Llama(model_path=str(args.gguf), n_ctx=args.n_ctx, n_threads=args.threads, n_batch=512,
                logits_all=False, verbose=False)
    lock = threading.Lock()
    model_id = f"llama.cpp:{args.gguf.name}"

    def complete(body: dict) -> dict:
        prompt = body["prompt"]
        max_tokens = int(body.get("max_tokens", 16))
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        ids = ids[-(args.n_ctx - max_tokens - 1):]
        t0 = time.monotonic()
        out: list[int] = []
        text = b""
        finish = "length"
        llm.reset()
        for tok in llm.generate(ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            if tok in STOP_IDS or llm.token_eos() == tok:
                finish = "stop"
                break
            out.append(tok)
            text = llm.detokenize(out)
            decoded = text.decode("utf-8", errors="ignore")
            cut = min((decoded.find(s) for s in stops if s and s in decoded), default=-1)
            if cut >= 0:
                finish = "stop"
                text = decoded[:cut].encode()
                break
            if len(out) >= max_tokens:
                break
        return {"choices": [{"index": 0, "text": text.decode("utf-8", errors="replace"), "finish_reason": finish}],
                "model": model_id,
                "usage": {"prompt_tokens": len(ids), "completion_tokens": len(out)},
                "timings": {"total_ms": (time.monotonic() - t0) * 1000}}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):  # quiet
            pass

        def reply(self, code: int, doc: dict) -> None:
            data = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.startswith("/v1/models"):
                self.reply(200, {"object": "list", "data": [{"id": model_id, "object": "model"}]})
            elif self.path in ("/health", "/ready"):
                self.reply(200, {"status": "ok"})
            else:
                self.reply(404, {"error": "not found"})

        def do_POST(self):
            if not self.path.startswith("/v1/completions"):
                self.reply(404, {"error": "not found"})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            with lock:
                self.reply(200, complete(body))

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"[llama_ref] {model_id} on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
