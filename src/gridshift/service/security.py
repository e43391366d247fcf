"""Browser-facing hardening: the interactive API docs served from the package (no CDN), and the security
headers of every answer.

The dashboard (``/``) keeps the API token in the browser's storage, so nothing on this origin may load code
from other hosts: ``/docs`` serves Swagger UI's script and style sheet from the ``fastapi-offline`` package's
files (``/docs/static/…``) with a start-up script of ours instead of an inline one, and ReDoc (which FastAPI
would load from a CDN) is off. Every answer carries ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer`` and a Content-Security-Policy: for the two pages, scripts and styles from
this origin only (the dashboard's one inline script by its hash) and no framing (``frame-ancestors 'none'``);
for everything else, nothing at all (``default-src 'none'``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_STATIC = "/docs/static"
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def page_csp(html: str = "") -> str:
    """The policy of a page of ours: its scripts from this origin, plus its inline scripts by their SHA-256
    (no other inline script runs); styles from this origin and inline (the pages set style attributes)."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'"
                      for s in re.findall(r"<script>(.*?)</script>", html, flags=re.S))
    return ("default-src 'self'; script-src 'self'" + (f" {hashes}" if hashes else "") + "; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")


class SecurityHeaders:
    """Pure ASGI middleware: the headers above on every HTTP answer that does not set its own policy."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                         (b"content-security-policy", API_CSP.encode())]
                headers += [(k, v) for k, v in extra if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="{static}/swagger-ui.css"><link rel="icon" href="{static}/favicon.png"></head>
<body><div id="swagger-ui"></div>
<script src="{static}/swagger-ui-bundle.js"></script><script src="/docs/init.js"></script></body></html>
"""


def swagger_static_dir() -> Path | None:
    """Swagger UI's files as the ``fastapi-offline`` package ships them (None without the package)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    path = Path(fastapi_offline.__file__).parent / "static"
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI from the package) and ``/docs/static``; nothing if the files are missing (the
    OpenAPI document stays at ``/openapi.json``)."""
    static = swagger_static_dir()
    if static is None:
        return
    app.mount(DOCS_STATIC, StaticFiles(directory=static), name="docs-static")
    html = DOCS_HTML.format(title=f"{app.title} - Swagger UI", static=DOCS_STATIC)
    params = {"url": app.openapi_url, "dom_id": "#swagger-ui", "layout": "BaseLayout", "deepLinking": True,
              "showExtensions": True, "showCommonExtensions": True}
    init = ("window.ui = SwaggerUIBundle(Object.assign(" + json.dumps(params) + ", {presets: "
            "[SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]}));\n")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": page_csp()})

    @app.get("/docs/init.js", include_in_schema=False)
    def docs_init() -> Response:
        return Response(init, media_type="text/javascript")
