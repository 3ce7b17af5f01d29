"""The command lines of DecodeLab's processes, shared by `make run` (scripts/run_local.py)
and the tests that start a real stack (tests/support/stack.py), so both run the same shape."""

from __future__ import annotations

import sys
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def redis(port: int, workdir: Path, *, aof: bool = True) -> list[str]:
    persistence = ["--appendonly", "yes", "--appendfsync", "everysec"] if aof else ["--appendonly", "no"]
    return ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir), "--save", "",
            "--protected-mode", "yes", *persistence]  # fmt: skip


def decode_worker(model: str, name: str, *, concurrency: int = 1) -> list[str]:
    """One queue per model; `-c 1` per GPU; prefetch 1 so a busy worker holds no queued work."""
    return [str(VENV_BIN / "celery"), "-A", "workers.celery_app", "worker", "-Q", f"decode.{model}",
            "-n", f"{name}@%h", "-c", str(concurrency), "-P", "prefork", "--prefetch-multiplier", "1",
            "-l", "info"]  # fmt: skip


def result_writer(name: str = "results") -> list[str]:
    return [str(VENV_BIN / "celery"), "-A", "decodelab.config", "worker", "-Q", "results", "-n", f"{name}@%h",
            "-c", "1", "-P", "solo", "-l", "info"]  # fmt: skip


def reaper(every_s: float | None = None) -> list[str]:
    return [sys.executable, "manage.py", "reap", *(["--every", str(every_s)] if every_s else [])]


def web(bind: str, *, workers: int = 2, threads: int = 4, access_log: bool = False) -> list[str]:
    return [str(VENV_BIN / "gunicorn"), "decodelab.config.wsgi", "-b", bind, "-w", str(workers),
            "--threads", str(threads), *(["--access-logfile", "-"] if access_log else [])]  # fmt: skip
