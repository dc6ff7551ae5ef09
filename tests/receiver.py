"""A real HTTP receiver on 127.0.0.1 for delivery tests: it answers as it is told (statuses, Retry-After,
stalls, reset connections) and keeps what it was sent, deduplicating on event ids as the real engines do."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    """One scripted answer: a status (and headers, body), after ``stall`` seconds; ``reset`` drops the connection
    without answering; ``keep`` says whether the receiver stores what it was sent (a stalled request the client
    gave up on may still have been stored — the retry must not count twice)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"{}"
    stall: float = 0.0
    reset: bool = False
    keep: bool = False


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Answers from ``script`` first (one answer per request), then ``default`` (``decide(request)`` if set)."""

    def __init__(self) -> None:
        self.script: list[Answer] = []
        self.decide: Callable[[Received], Answer] | None = None
        self.requests: list[Received] = []
        self.events: dict[str, int] = {}  # event id -> times received in a stored request
        self.ids: Callable[[Received], list[str]] = lambda r: [e["id"] for e in r.json()["events"]]
        self._lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def unique(self) -> int:
        with self._lock:
            return len(self.events)

    def duplicates(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.events.values())

    def _answer(self, request: Received) -> Answer:
        with self._lock:
            self.requests.append(request)
            answer = self.script.pop(0) if self.script else None
        if answer is None:
            answer = self.decide(request) if self.decide is not None else Answer()
        if (200 <= answer.status < 300 and not answer.reset) or answer.keep:
            ids = self.ids(request)
            with self._lock:
                for event_id in ids:
                    self.events[event_id] = self.events.get(event_id, 0) + 1
        return answer


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
            answer = receiver._answer(request)
            if answer.stall:
                time.sleep(answer.stall)
            if answer.reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
                return
            self.send_response(answer.status)
            for name, value in {"content-type": "application/json", **answer.headers}.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

    return Handler


@contextmanager
def running(receiver: Receiver | None = None) -> Iterator[Receiver]:
    receiver = receiver or Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.server = server
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
