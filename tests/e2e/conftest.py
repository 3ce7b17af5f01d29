"""A whole DecodeLab stack as separate processes: redis-server, a decode worker (prefork,
concurrency 1), the result writer, the reaper and gunicorn, on a temporary SQLite database."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.servers import ROOT, free_port, redis_server, stop, wait_for

VENV_BIN = Path(sys.executable).parent


@dataclass
class Stack:
    base_url: str
    username: str
    password: str
    token: str
    env: dict[str, str]
    logs: Path

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _web_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    logs = ROOT / "test-artifacts" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with redis_server(tmp / "redis") as redis_port:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "decodelab.config.settings.local",
            "DATABASE_URL": f"sqlite:///{tmp / 'e2e.sqlite3'}",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "PYTHONUNBUFFERED": "1",
        }
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        out = subprocess.run(
            [sys.executable, "manage.py", "adduser", "e2e", "--role", "researcher"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        creds = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        port = free_port()
        commands = {
            "worker": [
                str(VENV_BIN / "celery"),
                "-A",
                "workers.celery_app",
                "worker",
                "-Q",
                "decode.smollm2-135m",
                "-c",
                "1",
                "-P",
                "prefork",
                "--prefetch-multiplier",
                "1",
                "-n",
                "e2e-decode@%h",
                "-l",
                "info",
            ],
            "results": [
                str(VENV_BIN / "celery"),
                "-A",
                "decodelab.config",
                "worker",
                "-Q",
                "results",
                "-P",
                "solo",
                "-n",
                "e2e-results@%h",
                "-l",
                "info",
            ],
            "reaper": [sys.executable, "manage.py", "reap", "--every", "1"],
            "web": [
                str(VENV_BIN / "gunicorn"),
                "decodelab.config.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
                "--threads",
                "2",
            ],
        }
        procs = []
        try:
            for name, argv in commands.items():
                log = (logs / f"{name}.log").open("w")
                extra = {"DECODELAB_PRELOAD_MODELS": "smollm2-135m"} if name == "worker" else {}
                procs.append(
                    subprocess.Popen(
                        argv,
                        cwd=ROOT,
                        env={**env, **extra},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
            base_url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _web_up(f"{base_url}/login/"), 60, "gunicorn")
            yield Stack(base_url, "e2e", creds["password"], creds["api token"], env, logs)
        finally:
            for proc in reversed(procs):
                stop(proc)
