"""A notification service on a local port that records what it receives; it can fail the first
requests to show that delivery is retried and lands once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str = ""
    fail_first: int = 0  # answer `failure_status` to this many requests first
    failure_status: int = 503  # a 5xx is retried; a 4xx such as 422 is a refusal for good
    attempts: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)

    def keys(self, user_id: str) -> list[str]:
        return [r["key"] for r in self.received if r["user_id"] == user_id]


@contextmanager
def receiving() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                state.attempts += 1
                failing = state.attempts <= state.fail_first
                if not failing:
                    state.received.append({**body, "key": self.headers["Idempotency-Key"]})
            self.send_response(state.failure_status if failing else 202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/notify"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
