"""A tiny HTTP server on 127.0.0.1 for provider tests: routes answer with canned bodies, and every request
is recorded (path, query, headers) so tests can check what the adapter asked for."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Reply:
    """One answer: status, body (dict/list → JSON, str/bytes as is), headers, and a delay before it."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]

    def param(self, name: str) -> str | None:
        return next((v for k, v in self.query if k == name), None)


class Loopback:
    """``routes[path]`` is a Reply, a list of Replies (one per request, the last repeated) or a function
    ``(Seen) -> Reply``; a path not routed answers 404."""

    def __init__(self) -> None:
        self.routes: dict[str, Reply | list[Reply] | Callable[[Seen], Reply]] = {}
        self.seen: list[Seen] = []
        self._count: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the http.server name)
                parts = urlsplit(self.path)
                seen = Seen(parts.path, parse_qsl(parts.query, keep_blank_values=True), dict(self.headers))
                outer.seen.append(seen)
                route = outer.routes.get(parts.path)
                if route is None:
                    reply = Reply({"error": "not found"}, 404)
                elif callable(route) and not isinstance(route, Reply):
                    reply = route(seen)
                elif isinstance(route, list):
                    i = outer._count.get(parts.path, 0)
                    outer._count[parts.path] = i + 1
                    reply = route[min(i, len(route) - 1)]
                else:
                    reply = route
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                body = reply.encoded()
                try:
                    self.send_response(reply.status)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> Loopback:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]
