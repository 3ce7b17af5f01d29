"""`make run`'s process manager: redis-server, one decode worker, the result writer, the
reaper and the web server, on one machine. Ctrl-C (or SIGTERM) stops them all, web first and redis last,
and leaves no process behind.

Imports neither Django nor torch: it only starts programs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import stack_commands as commands  # scripts/ is on sys.path when this file runs

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("DECODELAB_DATA_DIR", ROOT / "data"))
HOST = os.environ.get("DECODELAB_HOST", "127.0.0.1")
PORT = int(os.environ.get("DECODELAB_PORT", "8000"))
REDIS_PORT = int(os.environ.get("DECODELAB_REDIS_PORT", "6379"))
MODEL = os.environ.get("DECODELAB_DEFAULT_MODEL", "smollm2-135m")
COLORS = {"redis": 31, "worker": 33, "results": 35, "reaper": 32, "web": 36}


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex(("127.0.0.1", port)) == 0


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Stack:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        self.worker_ready = threading.Event()

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        # A new session per child: Ctrl-C reaches only this manager, which stops the
        # children in order instead of all of them at once.
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            bufsize=1,
        )
        self.procs.append((name, proc))
        threading.Thread(target=self._pump, args=(name, proc), daemon=True).start()

    def _pump(self, name: str, proc: subprocess.Popen) -> None:
        tag = f"\033[{COLORS.get(name, 37)}m{name:>7}\033[0m |" if sys.stdout.isatty() else f"{name:>7} |"
        assert proc.stdout is not None
        for line in proc.stdout:
            if name == "worker" and "preloaded" in line:
                self.worker_ready.set()
            sys.stdout.write(f"{tag} {line}")
            sys.stdout.flush()

    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        print("\nStopping DecodeLab…", flush=True)
        # Web first (no new work), then workers (they finish or hand back their task), redis last.
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    print(f"{name} did not stop in 15 s; killing it", flush=True)
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        print("Stopped.", flush=True)

    def watch(self) -> int:
        while not self.stopping:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping the rest.", flush=True)
                    self.stop()
                    return 1
            time.sleep(0.5)
        return 0


def banner() -> None:
    url = f"http://{HOST}:{PORT}/"
    print("\n" + "=" * 64)
    print(f"  DecodeLab is running at {url}")
    creds = DATA / "local-credentials.json"
    if creds.exists():
        c = json.loads(creds.read_text())
        print(f"  Log in as {c['username']!r} with password {c['password']!r}")
        print(f"  API token: {c['token']}  (header  Authorization: Token <token>)")
    print(f"  API docs: {url}api/docs/    Stop: Ctrl-C")
    print("=" * 64 + "\n", flush=True)


def main() -> int:
    stack = Stack()

    def on_signal(signum, frame):
        stack.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    if port_open(PORT):
        print(f"Port {PORT} is already in use: is DecodeLab already running? (set DECODELAB_PORT)", file=sys.stderr)
        return 1
    broker = f"redis://127.0.0.1:{REDIS_PORT}/0"
    if redis_ping(REDIS_PORT):
        print(f"Using the redis-server already listening on 127.0.0.1:{REDIS_PORT}.")
    elif port_open(REDIS_PORT):
        print(f"Port {REDIS_PORT} is taken by something that is not redis (set DECODELAB_REDIS_PORT)", file=sys.stderr)
        return 1
    else:
        redis_dir = DATA / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        stack.start("redis", commands.redis(REDIS_PORT, redis_dir))
        for _ in range(100):
            if redis_ping(REDIS_PORT):
                break
            time.sleep(0.1)
    env = {"CELERY_BROKER_URL": broker, "DJANGO_SETTINGS_MODULE": "decodelab.config.settings.local"}
    stack.start("worker", commands.decode_worker(MODEL, f"decode-{MODEL}"), {**env, "DECODELAB_PRELOAD_MODELS": MODEL})
    stack.start("results", commands.result_writer(), env)
    stack.start("reaper", commands.reaper(), env)
    stack.start("web", [*commands.web(f"{HOST}:{PORT}", access_log=True), "--graceful-timeout", "5"], env)
    for _ in range(300):
        if stack.stopping:
            return 1
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/login/", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    # The banner comes last, once the worker holds the model, so it is not buried in start-up logs.
    deadline = time.monotonic() + 180
    while not stack.worker_ready.wait(0.5) and time.monotonic() < deadline and not stack.stopping:
        pass
    banner()
    return stack.watch()


if __name__ == "__main__":
    sys.exit(main())
