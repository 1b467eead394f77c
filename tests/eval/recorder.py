"""A stand-in backend that records prompts instead of running a model: `/v1/models` answers
what the model directory's ghostline.json says (so the LSP picks the same prompt format),
`/v1/completions` records the request and streams an empty completion. `run.py
--record-prompts` uses it to measure retrieval alone: did the prompt carry the definition a
cross-file case needs?"""
from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Recorder:
    def __init__(self, model_dir: Path):
        config = json.loads((model_dir / "ghostline.json").read_text())
        self.models = {
            "object": "list",
            "data": [{
                "id": config.get("name", model_dir.name),
                "object": "model",
                "owned_by": "ghostline",
                "family": config.get("family"),
                "context_length": config.get("context_length"),
                "fim": config.get("fim"),
            }],
        }
        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, content_type: str):
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/v1/models"):
                    self._send(200, json.dumps(recorder.models).encode(), "application/json")
                elif self.path in ("/health", "/ready"):
                    self._send(200, b"ok", "text/plain")
                else:
                    self._send(404, b"{}", "application/json")

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                recorder.requests.append(body)
                chunk = {"id": "rec", "object": "text_completion", "model": recorder.models["data"][0]["id"],
                         "choices": [{"text": "", "index": 0, "finish_reason": "stop"}]}
                if body.get("stream"):
                    payload = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
                    self._send(200, payload, "text/event-stream")
                else:
                    self._send(200, json.dumps(chunk).encode(), "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self) -> list[dict]:
        taken, self.requests = self.requests, []
        return taken

    def stop(self):
        self.server.shutdown()


DEFINITION_OF = {
    "python": r"(?:def|class)\s+{name}\b",
    "rust": r"\b(?:fn|struct|enum|trait|const|type)\s+{name}\b",
    "go": r"\b(?:func(?:\s*\([^)]*\))?|type|const|var)\s+{name}\b",
}


def prompt_text(request: dict) -> str:
    return str(request.get("prompt", "")) + str(request.get("suffix") or "")


def has_definition(prompt: str, name: str, language: str) -> bool:
    return re.search(DEFINITION_OF[language].format(name=re.escape(name)), prompt) is not None
