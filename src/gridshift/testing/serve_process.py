"""``gridshift serve`` as a child process on a free loopback port, for end-to-end tests, benchmarks and
scripts: started, waited for until ``/api/v1/health`` answers 200, and stopped cleanly (optionally after
cancelling the jobs still live, so no simulated job outlives the service)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

LIVE = ("queued", "planned", "running", "paused")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    """``python -m gridshift.cli serve --host 127.0.0.1 --port <free> *args`` in ``cwd``, its output in
    ``log_path``. Raises ``RuntimeError`` (with the log's tail) if it exits or is not healthy in time."""

    def __init__(self, args: list[str], *, cwd: Path, log_path: Path, timeout_s: float = 60.0) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gridshift.cli", "serve", "--host", "127.0.0.1",
                                      "--port", str(self.port), *args],
                                     cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gridshift serve exited with {self.proc.returncode}:\n{self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gridshift serve was not healthy within {timeout_s:g} s:\n{self._tail()}")

    def _tail(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def _call(self, method: str, path: str, token: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/api/v1{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read() or b"null")

    def cancel_live_jobs(self, token: str, wait_s: float = 20.0) -> None:
        """Cancel every live job (an operator ``token``) and wait until none runs or is paused."""
        query = "&".join(f"status={s}" for s in LIVE)
        for j in self._call("GET", f"/jobs?{query}", token)["items"]:
            self._call("POST", f"/jobs/{j['id']}/cancel", token, {})
        end = time.monotonic() + wait_s
        while time.monotonic() < end and self._call("GET", "/jobs?status=running&status=paused", token)["items"]:
            time.sleep(0.3)

    def stop(self, *, cancel_jobs_token: str | None = None) -> None:
        """Stop the service (SIGINT, then SIGKILL after 20 s); first cancel the live jobs if given a token."""
        if cancel_jobs_token is not None and self.proc.poll() is None:
            try:
                self.cancel_live_jobs(cancel_jobs_token)
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
