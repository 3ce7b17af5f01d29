"""`manage.py reap`: the reaper loop (one per deployment). `--once` sweeps once and exits."""

from __future__ import annotations

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

from decodelab.runs import reaper


class Command(BaseCommand):
    help = "Dispatch runs the broker never got, re-queue runs whose worker died, fail them after 3 attempts."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="one sweep, then exit")
        parser.add_argument("--every", type=float, default=None, help="seconds between sweeps")

    def handle(self, *args, once: bool = False, every: float | None = None, **options) -> None:
        if once:
            self.stdout.write(str(reaper.reap()))
            return
        every = every or settings.DECODELAB_REAP_EVERY_S
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.stdout.write(f"reaper: sweeping every {every:g} s")
        while not stop.is_set():
            try:
                reaper.reap()
            except Exception:  # a database blip must not end the reaper; the next sweep retries
                self.stderr.write("reaper: sweep failed; retrying")
            stop.wait(every)
