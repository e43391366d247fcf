"""The one HTTP client of GridShift's downloads (registry files, issued forecasts): httpx with timeouts and
retries.

Connection failures are retried by the transport (``httpx.HTTPTransport(retries=...)``); responses with a
status in ``RETRY_STATUS`` (429 and the transient 5xx) and timeouts are retried here, ``retries`` times,
waiting ``backoff_s * 2**attempt`` seconds between tries (or the server's ``Retry-After`` seconds, at most
``MAX_WAIT_S``). Anything that still fails raises :class:`HttpError`, an ``OSError`` whose ``reason`` is one
line (``HTTP 404 Not Found``, ``timed out``, the connection error), so callers can treat network trouble
like any other I/O error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

USER_AGENT = "gridshift-data/1"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_WAIT_S = 30.0
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5
_sleep = time.sleep  # replaced in tests


class HttpError(OSError):
    """A request that failed after its retries; ``reason`` is a one-line description."""

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{reason} ({url})")
        self.url, self.reason, self.status = url, reason, status


@dataclass(frozen=True)
class Fetched:
    """A complete response body and its headers."""

    body: bytes
    headers: httpx.Headers

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


class Stream:
    """A streamed response body with the ``read(n)`` and ``headers`` of a file-like HTTP response."""

    def __init__(self, response: httpx.Response) -> None:
        self.headers = response.headers
        self._chunks = response.iter_bytes()
        self._buf = b""

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all the rest when ``n < 0``); ``b""`` at the end."""
        while n < 0 or len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


def _client(timeout_s: float, retries: int, transport: httpx.BaseTransport | None) -> httpx.Client:
    return httpx.Client(transport=transport or httpx.HTTPTransport(retries=retries),
                        timeout=httpx.Timeout(timeout_s), follow_redirects=True,
                        headers={"User-Agent": USER_AGENT})


def _wait_s(response: httpx.Response | None, attempt: int, backoff_s: float) -> float:
    after = response.headers.get("Retry-After", "") if response is not None else ""
    if after.strip().isdigit():
        return min(float(after), MAX_WAIT_S)
    return min(backoff_s * 2**attempt, MAX_WAIT_S)


def _status_reason(response: httpx.Response) -> str:
    return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()


@contextmanager
def open_stream(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
                backoff_s: float = DEFAULT_BACKOFF_S, transport: httpx.BaseTransport | None = None,
                headers: Mapping[str, str] | None = None,
                auth: tuple[str, str] | None = None) -> Iterator[Stream]:
    """GET ``url`` (with extra ``headers`` and HTTP basic ``auth``, if given) and stream its body (retries as
    in the module docstring; the body itself is not retried once it has started to arrive). Raises
    :class:`HttpError`."""
    with _client(timeout_s, retries, transport) as client:
        for attempt in range(retries + 1):
            last = attempt == retries
            try:
                with client.stream("GET", url, headers=headers, auth=auth) as response:
                    if response.status_code in RETRY_STATUS and not last:
                        wait = _wait_s(response, attempt, backoff_s)
                    elif response.is_success:
                        try:
                            yield Stream(response)
                        except httpx.HTTPError as e:
                            raise HttpError(url, str(e) or type(e).__name__) from e
                        return
                    else:
                        raise HttpError(url, _status_reason(response), response.status_code)
            except httpx.TimeoutException as e:
                if last:
                    raise HttpError(url, "timed out") from e
                wait = _wait_s(None, attempt, backoff_s)
            except httpx.HTTPError as e:
                raise HttpError(url, str(e) or type(e).__name__) from e
            _sleep(wait)


def get(url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
        backoff_s: float = DEFAULT_BACKOFF_S, transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None, auth: tuple[str, str] | None = None) -> Fetched:
    """GET ``url`` and return its whole body (retries as in the module docstring). Raises :class:`HttpError`."""
    with open_stream(url, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, transport=transport,
                     headers=headers, auth=auth) as s:
        return Fetched(s.read(), s.headers)

