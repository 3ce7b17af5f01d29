"""The one place that reads the environment. Bad values fail at start-up, not at first use."""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A local .env (see .env.example) is read if present; the real environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DECODELAB_DATA_DIR", default=str(BASE_DIR / "data")))


def positive_int(name: str, default: int) -> int:
    value = env.int(name, default=default)
    if value < 1:
        raise environ.ImproperlyConfigured(f"{name} must be a positive integer (got {value})")
    return value
