"""Refuse oversized bodies before any view parses them, so nothing is stored or dispatched."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


class BodySizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Prompt-set uploads get a larger allowance (their own checks then give a 400 naming the
        # file); every other path keeps the small default.
        limit = settings.BODY_SIZE_LIMITS_BY_PATH.get(request.path_info, settings.MAX_REQUEST_BODY_BYTES)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            return JsonResponse(
                {
                    "detail": f"Request body is {length} bytes; the limit is {limit} bytes ({limit // 1024} KB).",
                    "errors": {"body": [f"must be at most {limit} bytes"]},
                },
                status=413,
            )
        return self.get_response(request)
