"""A simulated job for demonstrations: it "works" for a given number of seconds.

    python _simjob.py --work-s SECONDS [--step-s 0.1] [--exit-on-checkpoint]

It follows the job contract of the executors (docs/service/executors.md): writes its progress (0 … 1) to
``$GRIDSHIFT_PROGRESS_FILE``; on the checkpoint signal (``$GRIDSHIFT_CHECKPOINT_SIGNAL``, default SIGUSR1) it
saves the seconds done to ``$GRIDSHIFT_WORK_DIR/simjob.ckpt`` and touches ``$GRIDSHIFT_CHECKPOINT_ACK``
(or, with ``--exit-on-checkpoint``, exits 0 instead); on SIGTERM it checkpoints and exits 143; it starts from the
checkpoint when one exists. Standard library only (the atomic writer, gridshift/data/files.py, is loaded by
path), so it starts fast.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time


def _atomic_writer():
    """``gridshift/data/files.py``, the project's one atomic writer, loaded by path: this script runs under
    ``python -I`` and imports nothing of the package, so that it starts fast."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("_gridshift_files", Path(__file__).resolve().parents[2] / "data"
                                                  / "files.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_FILES = None


def _write(path: str, text: str) -> None:
    global _FILES
    if _FILES is None:
        _FILES = _atomic_writer()
    _FILES.write_text_atomic(path, text)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description="simulated GridShift job")
    ap.add_argument("--work-s", type=float, required=True, help="seconds of work to do")
    ap.add_argument("--step-s", type=float, default=0.1, help="progress step, seconds")
    ap.add_argument("--exit-on-checkpoint", action="store_true", help="exit 0 after a checkpoint")
    args = ap.parse_args(argv)

    work_dir = os.environ.get("GRIDSHIFT_WORK_DIR", ".")
    ckpt = os.path.join(work_dir, "simjob.ckpt")
    progress_file = os.environ.get("GRIDSHIFT_PROGRESS_FILE")
    ack_file = os.environ.get("GRIDSHIFT_CHECKPOINT_ACK")
    sig_name = os.environ.get("GRIDSHIFT_CHECKPOINT_SIGNAL", "SIGUSR1")
    done_s = 0.0
    try:
        with open(ckpt) as f:
            done_s = float(f.read().strip() or 0.0)
    except (OSError, ValueError):
        pass
    requests: list[int] = []
    signal.signal(getattr(signal, sig_name, signal.SIGUSR1), lambda s, f: requests.append(s))
    signal.signal(signal.SIGTERM, lambda s, f: requests.append(s))

    def checkpoint() -> None:
        os.makedirs(work_dir, exist_ok=True)
        _write(ckpt, f"{done_s:.3f}\n")

    while done_s < args.work_s:
        while requests:
            sig = requests.pop()
            checkpoint()
            if sig == signal.SIGTERM:
                return 143
            if args.exit_on_checkpoint:
                return 0  # exiting 0 is the answer: checkpointed and stopped
            if ack_file:
                _write(ack_file, f"{done_s:.3f}\n")  # checkpointed: the executor may freeze us now
        step = min(args.step_s, args.work_s - done_s)
        time.sleep(step)
        done_s += step
        if progress_file:
            _write(progress_file, f"{min(1.0, done_s / args.work_s) if args.work_s > 0 else 1.0:.4f}\n")
    if progress_file:
        _write(progress_file, "1.0\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
