"""Login rate limiting: failed logins are counted per (username, client address) and per address.

Past ``DECODELAB_LOGIN_MAX_FAILURES`` failures for one username from one address within
``DECODELAB_LOGIN_WINDOW_S`` seconds (or ``DECODELAB_LOGIN_MAX_FAILURES_PER_IP`` failures for any
usernames from one address), a login POST is answered 429 with a ``Retry-After`` header and is not
checked at all, so a guess made while blocked cannot succeed. A successful login clears its
(username, address) counter. The window is fixed: it starts at the first failure and the counter
expires with it.

The counters live in Django's cache (``CACHES``, from ``DJANGO_CACHE_URL``). The default
local-memory cache is per process: with several web processes (gunicorn ``-w 4``) each keeps its
own counts, so a deployment should point ``DJANGO_CACHE_URL`` at a shared Redis
(``redis://host:6379/1``; Django's ``RedisCache``). The client address is ``REMOTE_ADDR``; behind a
reverse proxy that is the proxy's address, and the limit becomes per username.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

KEY_PREFIX = "decodelab:login-failures"


def _key(*parts: str) -> str:
    # Usernames are user input: hash them so any text makes a valid, bounded cache key.
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]
    return f"{KEY_PREFIX}:{digest}"


def _limits() -> tuple[int, int, int]:
    return (
        settings.DECODELAB_LOGIN_MAX_FAILURES,
        settings.DECODELAB_LOGIN_MAX_FAILURES_PER_IP,
        settings.DECODELAB_LOGIN_WINDOW_S,
    )


def client_address(request: HttpRequest) -> str:
    return request.META.get("REMOTE_ADDR") or "unknown"


def _buckets(request: HttpRequest) -> list[tuple[str, int]]:
    per_user, per_ip, _ = _limits()
    address = client_address(request)
    username = (request.POST.get("username") or "").strip().lower()
    return [(_key("user", username, address), per_user), (_key("ip", address), per_ip)]


def retry_after(request: HttpRequest) -> int:
    """Seconds until this request's login is allowed again; 0 when it is allowed now."""
    now = time.time()
    wait = 0.0
    for key, limit in _buckets(request):
        state = cache.get(key)
        if state and state["count"] >= limit:
            wait = max(wait, state["reset_at"] - now)
    return math.ceil(wait) if wait > 0 else 0


def record_failure(request: HttpRequest) -> None:
    _, _, window = _limits()
    now = time.time()
    for key, _limit in _buckets(request):
        # add() starts a window only when none is open; a racing increment may be lost,
        # which errs on the side of letting one more guess through, never of locking out.
        if not cache.add(key, {"count": 1, "reset_at": now + window}, timeout=window):
            state = cache.get(key) or {"count": 0, "reset_at": now + window}
            state["count"] += 1
            cache.set(key, state, timeout=max(1, math.ceil(state["reset_at"] - now)))


def record_success(request: HttpRequest) -> None:
    key, _ = _buckets(request)[0]
    cache.delete(key)


def too_many_attempts(request: HttpRequest, wait: int) -> HttpResponse:
    message = f"Too many failed login attempts. Try again in {wait} seconds."
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response: HttpResponse = JsonResponse({"detail": message, "errors": {"username": [message]}}, status=429)
    else:
        body = render_to_string("registration/too_many_attempts.html", {"message": message, "wait": wait}, request)
        response = HttpResponse(body, status=429)
    response["Retry-After"] = str(wait)
    return response


OUTCOME_ATTR = "_decodelab_login_outcome"


@receiver(user_login_failed, dispatch_uid="decodelab-login-failed")
def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if request is not None and hasattr(request, OUTCOME_ATTR):
        setattr(request, OUTCOME_ATTR, "failed")


@receiver(user_logged_in, dispatch_uid="decodelab-logged-in")
def _on_logged_in(sender, request=None, user=None, **kwargs) -> None:
    if request is not None and hasattr(request, OUTCOME_ATTR):
        setattr(request, OUTCOME_ATTR, "success")


def login_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a login view (Django's LoginView, the admin's login): refuse a POST with 429 while
    one of its counters is over the limit; otherwise let the view check the password and count
    the outcome. A failure is a password check that failed (``user_login_failed``), whoever is
    logged in already (the admin's login also serves logged-in non-staff users)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        wait = retry_after(request)
        if wait:
            return too_many_attempts(request, wait)
        setattr(request, OUTCOME_ATTR, None)
        response = view(request, *args, **kwargs)
        outcome = getattr(request, OUTCOME_ATTR)
        if outcome == "failed":
            record_failure(request)
        elif outcome == "success":
            record_success(request)
        return response

    return wrapper
