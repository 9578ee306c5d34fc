"""A small OpenAI-compatible streaming server for tests, on 127.0.0.1 only: /v1/models, /version and streamed
/v1/completions with known timings (first token after ``ttft_s``, then one token every ``itl_s``). It records
when it actually wrote each request's first token and its end of stream (``time.perf_counter``: CLOCK_MONOTONIC on
Linux, one clock for every process of the machine) and reports them at /_sent, so tests compare the client's
numbers with what really happened.

``FakeServer`` runs it in a subprocess (so that its threads do not compete with the client's for the GIL, as a real
server would not), which stops itself after ``lifetime_s`` whatever happens to the test."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
VERSION = "0.0.1-fake"


class _Server:
    def __init__(self, ttft_s: float, itl_s: float, prompt_tokens: int = 32):
        self.ttft_s, self.itl_s, self.prompt_tokens = ttft_s, itl_s, prompt_tokens
        self.sent: dict[int, dict] = {}  # request number (from "Request N:") -> first_s, done_s, tokens
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()  # like uvicorn, no Nagle: each token leaves when it is written
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
                elif self.path == "/_sent":
                    with server._lock:
                        self._json(200, server.sent)
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


def _serve(ttft_s: float, itl_s: float, lifetime_s: float) -> None:
    server = _Server(ttft_s, itl_s)
    stop = threading.Timer(lifetime_s, server.httpd.shutdown)
    stop.daemon = True
    stop.start()
    print(server.url, flush=True)
    server.httpd.serve_forever()


class FakeServer:
    """The fake server in its own process; ``url`` while inside ``with``, ``sent()`` its records by request number."""

    def __init__(self, ttft_s: float = 0.040, itl_s: float = 0.010, lifetime_s: float = 120.0):
        self.args = [str(ttft_s), str(itl_s), str(lifetime_s)]

    def __enter__(self) -> FakeServer:
        self.proc = subprocess.Popen([sys.executable, __file__, *self.args], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError(f"the fake server did not start: {self.url!r}")
        return self

    def sent(self) -> dict[int, dict]:
        with urllib.request.urlopen(self.url + "/_sent", timeout=10) as r:
            return {int(k): v for k, v in json.loads(r.read()).items()}

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


if __name__ == "__main__":
    _serve(*(float(a) for a in sys.argv[1:4]))
