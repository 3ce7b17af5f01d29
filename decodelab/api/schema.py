"""OpenAPI schema additions: the error answers every operation can give, in one ``Error`` shape.

drf-spectacular documents the success answer each view declares; the errors come from shared
plumbing (authentication, permissions, the exception handler, the body-size middleware, the
quota), so this postprocessing hook adds them once for every operation. A view's own
declaration of an error code wins.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: a sentence, and the messages per field (field paths such as "
    "presets[1].params.num_beams; empty when no field is to blame).",
    "properties": {
        "detail": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["detail", "errors"],
}

ALWAYS = {
    "401": "Not authenticated: no or an invalid token or session.",
    "403": "Not allowed: a researcher endpoint called by an annotator (or the reverse), or a session "
    "call without its CSRF token.",
    "406": "The Accept header asks for a representation the API cannot give.",
}
WITH_PATH_PARAMETERS = {"404": "No such object, or it is not yours (another user's objects do not exist for you)."}
WITH_QUERY_PARAMETERS = {"400": "Invalid query parameters; `errors` names each.", "404": "No such page."}
WITH_BODY = {
    "400": "Invalid input; `errors` names each field and its limit.",
    "413": "Request body over the size limit; refused before parsing.",
    "415": "Unsupported media type (send application/json).",
}
UNSAFE = {
    "409": "The object's state does not allow this now.",
    "429": "Over a quota (runs in flight per user).",
    "503": "A service it needs (the broker) is unavailable.",
}
METHODS = ("get", "put", "post", "patch", "delete")


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular POSTPROCESSING_HOOKS entry."""
    result.setdefault("components", {}).setdefault("schemas", {}).setdefault("Error", ERROR_SCHEMA)
    for path, item in result.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            codes = dict(ALWAYS)
            parameters = operation.get("parameters", [])
            if "{" in path:
                codes.update(WITH_PATH_PARAMETERS)
            if any(p.get("in") == "query" for p in parameters):
                codes.update(WITH_QUERY_PARAMETERS)
            if method != "get":
                codes.update(WITH_BODY)
                codes.update(UNSAFE)
            responses = operation.setdefault("responses", {})
            for code, description in codes.items():
                responses.setdefault(code, _error(description))
    return result
