"""Checks shared by the workbench services."""

from __future__ import annotations

from typing import Any

from decodelab.common.errors import ApplicationError


def checked_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ApplicationError("must be 1 to 200 characters", field=field)
    return name.strip()
