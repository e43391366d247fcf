"""The gateway's lean HTTP/1.1 client against a small asyncio server on loopback: answers with a length and
chunked, keep-alive reuse, ``Connection: close``, a pooled connection the server had closed (retried once,
never twice), an answer that ends with the connection, a timeout, garbage, and no server at all."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from gridshift.service.gateway.upstream import Target, Upstream, UpstreamError


class Server:
    """Answers each request by ``mode``; counts connections and requests read."""

    def __init__(self, mode: str) -> None:
        self.mode, self.connections, self.requests = mode, 0, 0
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/chat/completions"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        on_this = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                body = json.loads(await reader.readexactly(n))
                on_this += 1
                if self.mode == "drop-all" or (self.mode == "drop-idle" and on_this > 1):
                    writer.close()  # as a server closing an idle keep-alive connection while the request went out
                    return
                self.requests += 1
                out = json.dumps({"echo": body, "n": self.requests}).encode()
                if self.mode == "slow":
                    await asyncio.sleep(5)
                if self.mode == "garbage":
                    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
                elif self.mode == "chunked":
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
                    for i in range(0, len(out), 7):
                        part = out[i:i + 7]
                        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                    writer.write(b"0\r\n\r\n")
                elif self.mode == "until-eof":
                    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + out)
                    await writer.drain()
                    writer.close()
                    return
                else:
                    close = self.mode == "close"
                    writer.write(b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nContent-Length: %d\r\n%s\r\n%s"
                                 % (len(out), b"Connection: close\r\n" if close else b"", out))
                    if close:
                        await writer.drain()
                        writer.close()
                        return
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass

    def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def run(mode: str, n: int = 3, timeout_s: float = 5.0) -> tuple[list, Server, Upstream]:
    async def go() -> tuple[list, Server, Upstream]:
        srv, up = Server(mode), Upstream()
        url = await srv.start()
        out = []
        try:
            for i in range(n):
                try:
                    out.append(await up.post(url, json.dumps({"i": i}).encode(), {"content-type": "application/json"},
                                             timeout_s=timeout_s))
                except (UpstreamError, TimeoutError) as e:
                    out.append(e)
                await asyncio.sleep(0.05)
        finally:
            up.close()
            srv.stop()
        return out, srv, up

    return asyncio.run(go())


def test_keep_alive_answers_are_read_whole_on_one_connection():
    out, srv, up = run("keep-alive")
    assert [a.status for a in out] == [429, 429, 429] and out[0].headers["retry-after"] == "3"
    assert [json.loads(a.body) for a in out] == [{"echo": {"i": i}, "n": i + 1} for i in range(3)]
    assert srv.connections == 1 and up.connections_made == 1


def test_chunked_and_until_close_answers():
    out, srv, _ = run("chunked")
    assert [json.loads(a.body)["echo"]["i"] for a in out] == [0, 1, 2] and srv.connections == 1
    out, srv, _ = run("until-eof")
    assert [json.loads(a.body)["n"] for a in out] == [1, 2, 3] and srv.connections == 3  # one per answer


def test_connection_close_and_a_silently_dropped_idle_connection():
    out, srv, _ = run("close")
    assert all(a.status == 429 for a in out) and srv.connections == 3
    out, srv, up = run("drop-idle")  # the pooled connection dies as the request goes out: retried on a new one
    assert all(not isinstance(a, Exception) and a.status == 429 for a in out)
    assert srv.requests == 3 and srv.connections == 3
    out, srv, _ = run("drop-all", n=1)  # a new connection that fails is not retried
    assert isinstance(out[0], UpstreamError) and srv.connections == 1


def test_timeouts_garbage_and_no_server_raise():
    out, _, _ = run("slow", n=1, timeout_s=0.3)
    assert isinstance(out[0], TimeoutError)
    out, _, _ = run("garbage", n=1)
    assert isinstance(out[0], UpstreamError) and "not an HTTP answer" in str(out[0])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there

    async def nobody() -> None:
        await Upstream().post(f"http://127.0.0.1:{port}/v1/x", b"{}", {}, timeout_s=2)

    with pytest.raises(UpstreamError, match="cannot connect"):
        asyncio.run(nobody())


def test_targets_of_urls():
    assert Target.of("https://api.example.com/v1/chat/completions") == Target(
        "api.example.com", 443, True, "/v1/chat/completions", "api.example.com")
    assert Target.of("http://[::1]:8000/x?y=1") == Target("::1", 8000, False, "/x?y=1", "[::1]:8000")
    with pytest.raises(UpstreamError):
        Target.of("ftp://example.com/x")
