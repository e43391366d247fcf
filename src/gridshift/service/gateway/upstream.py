"""The gateway's lean HTTP/1.1 client for non-streaming calls to its backends: one asyncio protocol per
connection with httptools' response parser (the parser uvicorn uses), keep-alive connections pooled per
backend, TLS for ``https`` backends. It does what the forwarder needs and no more — one POST of a JSON body,
the whole answer back (``Content-Length`` or chunked) — at about a sixth of aiohttp's client CPU per request
(0.04 vs 0.25 ms, sequential requests to the simulated backend on loopback, uvloop), which was a third of the
gateway's CPU per proxied request. Streams and health checks keep aiohttp, where the per-request overhead is
spread over many chunks or a few calls a second.

A pooled connection idle for more than ``IDLE_S`` is closed rather than reused (servers close idle
keep-alive connections: uvicorn, which vLLM runs on, after 5 s), and a reused connection that closes before
any byte of the answer arrived — the server closed it as the request went out, so never read the request — is
retried once on a new connection; any other failure is the caller's to handle (the forwarder fails over)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

IDLE_S = 2.0
MAX_IDLE_PER_BACKEND = 256


class UpstreamError(Exception):
    """The backend could not be reached, closed the connection early or answered something that is not HTTP."""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: bool
    path: str  # the URL's path (and query)
    host_header: str

    @staticmethod
    def of(url: str) -> Target:
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise UpstreamError(f"not an http(s) URL: {url}")
        tls = u.scheme == "https"
        port = u.port or (443 if tls else 80)
        default = (tls and port == 443) or (not tls and port == 80)
        host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
        return Target(u.hostname, port, tls, (u.path or "/") + (f"?{u.query}" if u.query else ""),
                      host if default else f"{host}:{port}")


@dataclass
class _Conn(asyncio.Protocol):
    transport: asyncio.Transport | None = None
    closed: bool = False
    got_bytes: bool = False
    keep_alive: bool = True
    idle_since: float = 0.0
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    parts: list[bytes] = field(default_factory=list)
    waiter: asyncio.Future[Answer] | None = None
    parser: httptools.HttpResponseParser | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        if self.parser is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(UpstreamError(f"not an HTTP answer ({e})"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if (self.waiter is not None and self.status and "content-length" not in self.headers
                and "chunked" not in self.headers.get("transfer-encoding", "")):
            self.on_message_complete()  # an answer without a length ends with the connection
            return
        self._fail(UpstreamError("the backend closed the connection before the answer was complete"))

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)

    def on_message_complete(self) -> None:
        w, self.waiter, self.parser = self.waiter, None, None
        if w is not None and not w.done():
            w.set_result(Answer(self.status, self.headers, b"".join(self.parts)))

    # -- use
    def _fail(self, e: Exception) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_exception(e)

    def send(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None
        self.status, self.headers, self.parts, self.got_bytes = 0, {}, [], False
        self.parser = httptools.HttpResponseParser(self)
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Upstream:
    """Pooled keep-alive connections per backend (``host``, ``port``, TLS); see the module's text."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, int, bool], list[_Conn]] = {}
        self._targets: dict[str, Target] = {}
        self._ssl = ssl_context
        self.connections_made = 0

    def _target(self, url: str) -> Target:
        t = self._targets.get(url)
        if t is None:
            if len(self._targets) > 10_000:
                self._targets.clear()
            t = self._targets[url] = Target.of(url)
        return t

    def _pooled(self, t: Target) -> _Conn | None:
        idle = self._idle.get((t.host, t.port, t.tls))
        now = time.monotonic()
        while idle:
            c = idle.pop()  # the most recently used first
            if not c.closed and now - c.idle_since <= IDLE_S:
                return c
            c.close()
        return None

    async def _connect(self, t: Target, timeout_s: float) -> _Conn:
        loop = asyncio.get_running_loop()
        ctx = (self._ssl or ssl.create_default_context()) if t.tls else None
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                _Conn, t.host, t.port, ssl=ctx, server_hostname=t.host if t.tls else None), timeout_s)
        except OSError as e:
            raise UpstreamError(f"cannot connect to {t.host}:{t.port} ({e})") from None
        self.connections_made += 1
        return conn

    async def post(self, url: str, body: bytes, headers: dict[str, str], *, timeout_s: float,
                   connect_timeout_s: float = 2.0) -> Answer:
        """POST ``body`` to ``url`` with ``headers`` (plus Host and Content-Length) and read the whole answer
        within ``timeout_s``; raises :class:`UpstreamError` or ``TimeoutError``."""
        t = self._target(url)
        head = [f"POST {t.path} HTTP/1.1\r\nHost: {t.host_header}\r\nContent-Length: {len(body)}\r\n"]
        head += [f"{k}: {v}\r\n" for k, v in headers.items()]
        data = "".join(head).encode("latin-1") + b"\r\n" + body
        async with asyncio.timeout(timeout_s):
            for attempt in range(2):
                conn = self._pooled(t)
                reused = conn is not None
                if conn is None:
                    conn = await self._connect(t, connect_timeout_s)
                try:
                    answer = await conn.send(data)
                except UpstreamError:
                    conn.close()
                    if reused and not conn.got_bytes and attempt == 0:
                        continue  # a keep-alive connection the server had closed: it never read the request
                    raise
                except BaseException:  # timeout or cancellation mid-answer: the connection is unusable
                    conn.close()
                    raise
                if conn.keep_alive and not conn.closed:
                    conn.idle_since = time.monotonic()
                    pool = self._idle.setdefault((t.host, t.port, t.tls), [])
                    if len(pool) < MAX_IDLE_PER_BACKEND:
                        pool.append(conn)
                    else:
                        conn.close()
                else:
                    conn.close()
                return answer
        raise UpstreamError("unreachable")  # pragma: no cover (the loop returns or raises)

    def close(self) -> None:
        for pool in self._idle.values():
            for c in pool:
                with contextlib.suppress(Exception):
                    c.close()
        self._idle.clear()
