"""Checks of request values beyond their schema: text without NUL characters, finite numbers, cursors,
time windows, and sites and zones the fleet knows (422 with the field named)."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gridshift.service.schemas import MAX_WINDOW
from gridshift.service.store import InvalidSpec


def check_text(value: Any, path: str = "") -> None:
    """Refuse NUL characters, unencodable strings and non-finite numbers anywhere in a body."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidSpec("must not contain NUL characters", field=path or None)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidSpec("is not valid Unicode text", field=path or None) from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidSpec("must be a finite number", field=path or None)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            check_text(k, path)
            check_text(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_text(v, f"{path}.{i}" if path else str(i))


def check_cursor(cursor: str | None) -> None:
    if cursor is None:
        return
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode("utf-8")
        json.loads(text)
    except (ValueError, TypeError):
        raise InvalidSpec("invalid cursor (pass next_cursor from the previous page)", field="cursor") from None
    if "\x00" in text or "\\u0000" in text:
        raise InvalidSpec("invalid cursor (pass next_cursor from the previous page)", field="cursor")


def check_window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidSpec("end must be after start", field="end")
    if end - start > MAX_WINDOW:
        raise InvalidSpec(f"window longer than {MAX_WINDOW.days} days", field="end")



def check_known(names: Any, known: Any, field: str, what: str) -> None:
    """Refuse a name the fleet does not know (422 naming ``field`` and the known names). ``known`` empty: the
    service runs without a fleet description and cannot tell, so every name passes."""
    known = set(known)
    if not known:
        return
    for i, name in enumerate([names] if isinstance(names, str) else list(names)):
        if name not in known:
            where = field if isinstance(names, str) else f"{field}.{i}"
            shown = ", ".join(sorted(known)[:20]) + (", …" if len(known) > 20 else "")
            raise InvalidSpec(f"unknown {what} '{str(name)[:80]}' (this fleet has: {shown})", field=where)
