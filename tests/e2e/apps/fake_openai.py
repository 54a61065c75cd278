"""A small OpenAI-compatible chat completions server for the cost e2e test (no network).

``POST /v1/chat/completions``: the last user message says what to report, as
``tokens <prompt> <completion>``; the server answers with that usage and the dated response
model for the requested one (``gpt-4o`` -> ``gpt-4o-2024-08-06``), as OpenAI does. With
``"stream": true`` it streams SSE chunks, and a final usage chunk when the request asks for
``stream_options.include_usage``. Every answered request is appended to the ground-truth file
given on the command line (one JSON line: model, tokens, stream).

Usage: fake_openai.py PORT LEDGER_PATH
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DATED = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
_ledger_lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    ledger = ""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not here"}})
            return
        text = str(request["messages"][-1]["content"])
        _, prompt, completion = text.split()[:3]
        usage = {
            "prompt_tokens": int(prompt),
            "completion_tokens": int(completion),
            "total_tokens": int(prompt) + int(completion),
        }
        model = DATED.get(request["model"], request["model"])
        stream = bool(request.get("stream"))
        with_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        with _ledger_lock, open(self.ledger, "a") as ledger:
            entry = {
                "model": model,
                **usage,
                "stream": stream,
                "usage_sent": with_usage or not stream,
            }
            ledger.write(json.dumps(entry) + "\n")
        base = {"id": "chatcmpl-e2e", "created": int(time.time()), "model": model}
        if not stream:
            self._json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "ok"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[dict[str, Any]] = [
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "o"}}]},
            {**chunk, "choices": [{"index": 0, "delta": {"content": "k"}, "finish_reason": None}]},
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        if with_usage:
            events.append({**chunk, "choices": [], "usage": usage})
        body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
        body += b"data: [DONE]\n\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    Handler.ledger = sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
