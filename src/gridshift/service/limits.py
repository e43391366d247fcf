"""Rate and size limits: token buckets per key (429 with ``Retry-After``) and the request body limit
(413, whether the size is announced by ``Content-Length`` or the body is sent chunked)."""

from __future__ import annotations

import json
import math
import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridshift.service.http_errors import ApiError


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", field="body")


# ------------------------------------------------------------------------------------------ rate limits


class TokenBucket:
    """Token buckets per key (thread-safe): ``rate_per_s`` refill, at most ``burst`` stored."""

    MAX_KEYS = 100_000

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for ``key``: 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        with self._lock:
            level, last = self._state.get(key, (self.burst, now))
            level = min(self.burst, level + (now - last) * self.rate_per_s)
            if level >= 1.0:
                self._state[key] = (level - 1.0, now)
                wait = 0.0
            else:
                self._state[key] = (level, now)
                wait = (1.0 - level) / self.rate_per_s
            if len(self._state) > self.MAX_KEYS:  # forget full buckets (they behave like new ones)
                full = [k for k, (lv, t) in self._state.items() if lv + (now - t) * self.rate_per_s >= self.burst]
                for k in full:
                    del self._state[k]
        return wait


def retry_after(wait_s: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait_s)))}


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_body_bytes`` with 413 (Content-Length checked up front, chunked
    bodies counted as they arrive)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    n = int(value)
                except ValueError:
                    await _send_error(send, 400, "Content-Length is not an integer", "Content-Length")
                    return
                if n > limit:
                    await _send_error(send, 413, f"request body larger than {limit} bytes", "body")
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await _send_error(send, 413, f"request body larger than {limit} bytes", "body")


async def _send_error(send: Send, status: int, detail: str, field: str | None) -> None:
    body = json.dumps({"detail": detail, "field": field}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})

