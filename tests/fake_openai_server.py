"""A small OpenAI-compatible streaming server for tests, on 127.0.0.1 only: /v1/models, /version and streamed
/v1/completions with known timings (first token after ``ttft_s``, then one token every ``itl_s``). It records
when it actually wrote each request's first token and its end of stream (``time.perf_counter``, the clock the
client uses in the same process), so tests compare the client's numbers with what really happened."""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VERSION = "0.0.1-fake"


class FakeServer:
    def __init__(self, ttft_s: float = 0.040, itl_s: float = 0.010, prompt_tokens: int = 32):
        self.ttft_s, self.itl_s, self.prompt_tokens = ttft_s, itl_s, prompt_tokens
        self.sent: dict[int, dict] = {}  # request number (from "Request N:") -> first_s, done_s, tokens
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _json(self, status: int, obj) -> None:
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                elif self.path == "/version":
                    self._json(200, {"version": VERSION})
                else:
                    self._json(404, {"detail": "Not Found"})

            def do_POST(self):
                if self.path != "/v1/completions":
                    self._json(404, {"detail": "Not Found"})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n = int(re.match(r"Request (\d+):", body["prompt"]).group(1))
                tokens = int(body["max_tokens"])
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                t0 = time.perf_counter()
                first = None
                for k in range(tokens):
                    due = t0 + server.ttft_s + k * server.itl_s
                    time.sleep(max(0.0, due - time.perf_counter()))
                    event = {"id": f"cmpl-{n}", "object": "text_completion", "model": MODEL,
                             "choices": [{"index": 0, "text": f" w{k}", "finish_reason": None}], "usage": None}
                    self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                    self.wfile.flush()
                    if first is None:
                        first = time.perf_counter()
                usage = {"id": f"cmpl-{n}", "object": "text_completion", "model": MODEL, "choices": [],
                         "usage": {"prompt_tokens": server.prompt_tokens, "completion_tokens": tokens,
                                   "total_tokens": server.prompt_tokens + tokens}}
                self.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
                self.wfile.flush()
                done = time.perf_counter()
                with server._lock:
                    server.sent[n] = {"first_s": first, "done_s": done, "tokens": tokens}

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)
