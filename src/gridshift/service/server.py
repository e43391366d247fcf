"""How ``gridshift serve`` runs uvicorn: a header read timeout and a connection cap.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits for a request's headers as
long as bytes keep trickling in, so a few slow clients ("slowloris") could hold every connection.
:func:`http_protocol` returns uvicorn's HTTP protocol with a header timer: a connection whose request headers
are not complete ``header_timeout_s`` after it opened (or after its previous answer) is closed. The
connection cap is uvicorn's ``limit_concurrency``: beyond ``max_connections`` open connections (or
requests in progress) new requests get a 503 at once instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("gridshift.serve")

DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 1000


def http_protocol(header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S) -> type:
    """uvicorn's HTTP protocol (httptools if installed, else h11) with the header read timeout."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # no httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    class HeaderTimeoutProtocol(Base):  # type: ignore[misc, valid-type]
        """Closes a connection whose request headers take longer than ``header_timeout_s``."""

        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_timer()  # the next request's headers, on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._disarm_header_timer()
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _disarm_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            waiting = self.cycle is None or self.cycle.response_complete  # no request whose headers are in
            if waiting and not self.transport.is_closing():
                peer = self.client[0] if getattr(self, "client", None) else "?"
                log.warning("closed a connection from %s: no complete request headers within %g s", peer,
                            header_timeout_s)
                self.transport.close()

    return HeaderTimeoutProtocol


def uvicorn_options(*, header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
                    max_connections: int = DEFAULT_MAX_CONNECTIONS) -> dict[str, Any]:
    """The keyword arguments of ``uvicorn.run`` / ``uvicorn.Config`` for both limits."""
    if not header_timeout_s > 0:
        raise ValueError("header_timeout_s must be > 0")
    if max_connections < 1:
        raise ValueError("max_connections must be >= 1")
    return {"http": http_protocol(header_timeout_s), "limit_concurrency": int(max_connections)}
