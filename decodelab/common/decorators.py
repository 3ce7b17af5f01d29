from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse


def researcher_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Researcher pages: log in first; annotators are refused (they only see rating pages)."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not getattr(request.user, "is_researcher", False):
            raise PermissionDenied("This page is for researchers.")
        return view(request, *args, **kwargs)

    wrapper.researcher_only = True  # type: ignore[attr-defined]  # read by the security tests' URL walk
    return wrapper
