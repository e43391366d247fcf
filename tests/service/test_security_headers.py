"""The browser-facing answers: ``/docs`` loads Swagger UI from this origin (the package's files), never from a
CDN; the dashboard and the docs carry a Content-Security-Policy that allows no other host and no framing;
every answer says ``nosniff``."""

from __future__ import annotations

import re

import pytest

from gridshift.service.db import upgrade
from gridshift.service.store import Store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def client(tmp_path):
    from fastapi.testclient import TestClient

    from gridshift.service.app import create_app

    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as store, TestClient(create_app(store)) as c:
        yield c


def test_docs_load_swagger_ui_from_this_origin_only(client):
    r = client.get("/docs")
    assert r.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # no other host, no CDN
    assert "<script>" not in r.text  # no inline script: the start-up script is a file
    for u in urls:
        got = client.get(u)
        assert got.status_code == 200 and len(got.content) > 100, u
    assert "SwaggerUIBundle" in client.get("/docs/static/swagger-ui-bundle.js").text
    assert '"url": "/openapi.json"' in client.get("/docs/init.js").text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "http" not in csp
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_the_dashboard_allows_only_its_own_inline_script(client):
    r = client.get("/")
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "connect-src 'self'" in csp and "http" not in csp
    hashes = re.findall(r"'sha256-[A-Za-z0-9+/=]+'", csp)
    assert len(hashes) == len(re.findall(r"<script>", r.text)) == 1
    assert r.headers["x-content-type-options"] == "nosniff"


def test_every_answer_says_nosniff_and_api_answers_allow_nothing(client):
    for path in ("/api/v1/health", "/api/v1/jobs", "/openapi.json", "/nowhere"):
        r = client.get(path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["content-security-policy"].startswith("default-src 'none'"), path
        assert r.headers["referrer-policy"] == "no-referrer"


def test_health_reports_a_stuck_writer_without_waiting_for_it(client, monkeypatch):
    """A write transaction that holds SQLite's write lock: /health answers at once (it reads, it does not take
    the lock) and reports writes as stuck once the lock has been held too long."""
    import threading
    import time

    from gridshift.service.routes import health

    store = client.app.state.store
    ops = {"Authorization": f"Bearer {store.create_token('ops', 'operator')[1]}"}
    assert client.get("/api/v1/health").json()["database"]["writable"] is True
    monkeypatch.setattr(health, "WRITE_STALL_S", 0.2)
    held, release = threading.Event(), threading.Event()

    def stuck_writer():
        with store._tx():
            held.set()
            release.wait(10)

    t = threading.Thread(target=stuck_writer)
    t.start()
    try:
        held.wait(5)
        time.sleep(0.3)
        t0 = time.monotonic()
        r = client.get("/api/v1/health")
        assert time.monotonic() - t0 < 2.0
        assert r.status_code == 200 and r.json()["status"] == "degraded"
        assert r.json()["database"]["writable"] is False and r.json()["database"]["write_lock_held_s"] is None
        t0 = time.monotonic()
        db = client.get("/api/v1/health", headers=ops).json()["database"]  # an operator sees the details
        assert time.monotonic() - t0 < 2.0 and db["write_lock_held_s"] >= 0.3 and db["busy_errors"] == 0
    finally:
        release.set()
        t.join()
    assert client.get("/api/v1/health").json()["status"] == "ok"
