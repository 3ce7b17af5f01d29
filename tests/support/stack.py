"""A DecodeLab stack as real processes for tests: redis-server, decode workers, the result
writer, the reaper and gunicorn on a temporary SQLite database. Processes can be killed and
restarted by name, which is what the fault tests do."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from scripts import stack_commands as commands
from tests.support.servers import ROOT, free_port, redis_ping, stop, wait_for


def _web_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@dataclass
class Stack:
    tmp: Path
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    redis_port: int = 0
    web_port: int = 0
    username: str = ""
    password: str = ""
    token: str = ""
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    cleanups: list = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def db_path(self) -> Path:
        return self.tmp / "stack.sqlite3"

    def manage(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip

    # --- processes ---
    def start(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("a")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env={**self.env, **(extra_env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs[name] = proc
        return proc

    def kill(self, name: str, sig: int = signal.SIGKILL, *, timeout: float = 60) -> None:
        """Send ``sig`` to the process group; wait for it to exit (SIGKILL after ``timeout``)."""
        proc = self.procs[name]
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            stop(proc)
        self.procs.clear()
        while self.cleanups:
            self.cleanups.pop()()

    def start_redis(self) -> None:
        workdir = self.tmp / "redis"
        workdir.mkdir(exist_ok=True)
        self.start("redis", commands.redis(self.redis_port, workdir))
        wait_for(lambda: redis_ping(self.redis_port), 15, "redis-server")

    def start_web(self, *, workers: int = 2, threads: int = 2) -> None:
        self.start("web", commands.web(f"127.0.0.1:{self.web_port}", workers=workers, threads=threads))
        wait_for(lambda: _web_up(f"{self.base_url}/login/"), 60, "gunicorn")

    # --- reading the database the stack writes (SQLite stacks; the processes own it) ---
    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql, params).fetchall()


def database_url(stack: Stack) -> str:
    """A fresh database for the stack: a new one on the PostgreSQL server when the tests run
    against Postgres (DATABASE_URL=postgres://...), else a temporary SQLite file."""
    server = os.environ.get("DATABASE_URL", "")
    if not server.startswith("postgres"):
        return f"sqlite:///{stack.db_path}"
    import psycopg

    name = f"decodelab_stack_{os.getpid()}_{stack.web_port}"
    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f'drop database if exists "{name}"')
        db.execute(f'create database "{name}"')
    stack.cleanups.append(lambda: _drop_database(server, name))
    return server.rsplit("/", 1)[0] + "/" + name


def _drop_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(server, autocommit=True) as db:
        db.execute(f'drop database if exists "{name}" with (force)')


def new_stack(tmp: Path, logs: Path, extra_env: dict[str, str] | None = None) -> Stack:
    """A migrated database with a researcher, a redis-server, ports chosen; nothing else started."""
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(tmp=tmp, logs=logs, redis_port=free_port(), web_port=free_port())
    stack.env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "decodelab.config.settings.local",
        "DATABASE_URL": database_url(stack),
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{stack.redis_port}/0",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=stack.env, check=True)
    out = stack.manage("adduser", "e2e", "--role", "researcher")
    out.check_returncode()
    creds = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    stack.username, stack.password, stack.token = "e2e", creds["password"], creds["api token"]
    stack.start_redis()
    return stack
