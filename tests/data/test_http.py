"""The shared HTTP client: retries on 429/5xx and timeouts with backoff, no retry on other errors, one-line
reasons, streamed bodies."""

from __future__ import annotations

import httpx
import pytest

from gridshift.data import http


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(http, "_sleep", waits.append)
    return waits


def replies(*steps):
    """A mock transport answering each request with the next step: a status code or an exception."""
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        step = steps[min(len(calls), len(steps) - 1)]
        calls.append(str(request.url))
        if isinstance(step, Exception):
            raise step
        headers = {"Retry-After": "2"} if step == 429 else {}
        return httpx.Response(step, content=b"payload" if step == 200 else b"", headers=headers)

    return httpx.MockTransport(handle), calls


def test_retries_transient_statuses_with_backoff(no_sleep):
    transport, calls = replies(503, 429, 200)
    got = http.get("https://example.org/f.csv", retries=3, backoff_s=0.5, transport=transport)
    assert got.body == b"payload" and len(calls) == 3
    assert no_sleep == [0.5, 2.0]  # exponential backoff, then the server's Retry-After


def test_gives_up_after_the_retries_with_a_one_line_reason():
    transport, calls = replies(502)
    with pytest.raises(http.HttpError) as e:
        http.get("https://example.org/f.csv", retries=2, transport=transport)
    assert len(calls) == 3 and e.value.status == 502 and e.value.reason == "HTTP 502 Bad Gateway"
    assert isinstance(e.value, OSError) and "\n" not in str(e.value)


def test_client_errors_are_not_retried():
    transport, calls = replies(404, 200)
    with pytest.raises(http.HttpError, match="HTTP 404 Not Found"):
        http.get("https://example.org/missing.csv", transport=transport)
    assert len(calls) == 1


def test_timeouts_are_retried():
    transport, calls = replies(httpx.ReadTimeout("slow"), 200)
    assert http.get("https://example.org/f.csv", transport=transport).body == b"payload"
    transport, calls = replies(httpx.ConnectTimeout("slow"))
    with pytest.raises(http.HttpError, match="timed out"):
        http.get("https://example.org/f.csv", retries=1, transport=transport)
    assert len(calls) == 2


def test_stream_reads_in_pieces():
    transport, _ = replies(200)
    with http.open_stream("https://example.org/f.csv", transport=transport) as s:
        assert s.read(3) == b"pay" and s.read(100) == b"load" and s.read(10) == b""
