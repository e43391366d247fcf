"""``GET /``: the live dashboard, one self-contained page (plain JS and inline SVG; no external requests)
that polls ``/api/v1`` with the token the user enters."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gridshift.service.security import page_csp

router = APIRouter()

DASHBOARD_HTML = resources.files("gridshift.service").joinpath("static/dashboard.html").read_text(encoding="utf-8")
DASHBOARD_CSP = page_csp(DASHBOARD_HTML)  # its one inline script by hash; no other host; never framed


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard() -> HTMLResponse:
    return HTMLResponse(DASHBOARD_HTML, headers={"Content-Security-Policy": DASHBOARD_CSP})
