"""Waiting in tests for something that happens in another process."""

from __future__ import annotations

import time


def wait_for(fn, timeout_s: float = 20.0, what: str = "condition"):
    """``fn()``'s first truthy value, polled every 50 ms; AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
