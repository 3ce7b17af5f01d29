"""Every API error is JSON: {"detail": "...", "errors": {"field": ["message", ...]}}."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views.defaults import page_not_found as html_page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from decodelab.common.errors import ApplicationError


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into flat field paths such as presets[1].params.num_beams."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
                path = f"{prefix}[{key}]"  # list items: presets[0].strategy
            else:
                name = "body" if key == "non_field_errors" and not prefix else str(key)
                path = f"{prefix}.{name}" if prefix else name
            out.update(_flatten(value, path))
    elif isinstance(detail, list) and detail and all(isinstance(d, (dict, list)) for d in detail):
        for i, value in enumerate(detail):
            out.update(_flatten(value, f"{prefix}[{i}]"))
    elif isinstance(detail, list):
        out[prefix or "body"] = [str(d) for d in detail]
    else:
        out[prefix or "body"] = [str(detail)]
    return {k: v for k, v in out.items() if v}


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, ApplicationError):
        errors = {exc.field: [exc.message]} if exc.field else {}
        detail = f"{exc.field}: {exc.message}" if exc.field else exc.message
        return Response({"detail": detail, "errors": errors, **exc.extra}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.items()), ("body", ["invalid input"]))
        response.data = {"detail": f"{first[0]}: {first[1][0]}", "errors": errors}
        response.status_code = status.HTTP_400_BAD_REQUEST
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"]), "errors": {}}
    return response


def page_not_found(request, exception: Exception | None = None):
    """handler404: under /api/ a URL that matches no endpoint (e.g. a malformed id in the path) is
    a JSON error like every other API answer; pages keep Django's HTML 404."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "errors": {}}, status=404)
    return html_page_not_found(request, exception)
