"""The server's limits, on a real uvicorn server: a connection whose request headers trickle in is closed
after the header timeout (also on a kept-alive connection), complete requests are answered, and beyond the
connection cap a request gets a 503 at once."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from gridshift.service.server import uvicorn_options
from gridshift.testing.serve_process import free_port

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def tiny_app(scope, receive, send):
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def server(request):
    import uvicorn

    port = free_port()
    config = uvicorn.Config(tiny_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                            timeout_keep_alive=30, **uvicorn_options(**request.param))
    srv = uvicorn.Server(config)
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port
    srv.should_exit = True
    t.join(10)


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("server", [{"header_timeout_s": 0.5}], indirect=True)
def test_slow_headers_are_cut_off_and_complete_requests_answered(server):
    slow = socket.create_connection(("127.0.0.1", server))
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    t0 = time.monotonic()
    assert closed_within(slow, 5.0) and 0.4 < time.monotonic() - t0 < 3.0
    kept = socket.create_connection(("127.0.0.1", server))
    kept.sendall(GET)
    kept.settimeout(5)
    assert kept.recv(1024).startswith(b"HTTP/1.1 200")
    t0, cut = time.monotonic(), False
    try:  # the next request's headers trickle in, a line every 0.1 s: cut off all the same
        kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        for i in range(40):
            kept.sendall(b"X-Slow-%d: a\r\n" % i)
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        cut = True
    assert (cut or closed_within(kept, 3.0)) and time.monotonic() - t0 < 3.5


@pytest.mark.parametrize("server", [{"max_connections": 2}], indirect=True)
def test_beyond_the_connection_cap_a_request_gets_503(server):
    held = [socket.create_connection(("127.0.0.1", server)) for _ in range(2)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", server))
    extra.sendall(GET)
    extra.settimeout(5)
    assert extra.recv(1024).startswith(b"HTTP/1.1 503")
    for s in held:
        s.close()
