"""Errors raised by services, understood by every interface (API, pages, CLI)."""

from __future__ import annotations


class ApplicationError(Exception):
    """A request the service refuses. ``field`` names the offending input where there is one."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra or {}


class ServiceUnavailable(ApplicationError):
    status_code = 503


class QuotaExceeded(ApplicationError):
    status_code = 429
