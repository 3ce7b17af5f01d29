"""A whole DecodeLab stack as separate processes: redis-server, a decode worker on the default
model (prefork, concurrency 1), the result writer, the reaper and gunicorn, on a temporary
SQLite database."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from scripts import stack_commands as commands
from tests.support.servers import ROOT
from tests.support.stack import new_stack

# Debian's Chromium, headless; without the background-networking flags it keeps trying to reach
# the (closed) network at start.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SHOTS = ROOT / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def live_stack(tmp_path_factory):
    stack = new_stack(tmp_path_factory.mktemp("stack"), ROOT / "test-artifacts" / "logs")
    try:
        stack.start(
            "worker", commands.decode_worker("smollm2-135m", "e2e-decode"), {"DECODELAB_PRELOAD_MODELS": "smollm2-135m"}
        )
        stack.start("results", commands.result_writer("e2e-results"))
        stack.start("reaper", commands.reaper(1))
        stack.start_web()
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def settled(page) -> None:
    """Wait until htmx has swapped and settled the last answer (a person does not type within
    20 ms; a fast browser acting before htmx has processed a new fragment would find it inert)."""
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')")
