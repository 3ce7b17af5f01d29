"""Bounds on untrusted JSON: nesting depth.

Python's json module recurses once per nesting level, so a body such as ``[[[[...]]]]`` a few
thousand levels deep raises RecursionError (a server error) while parsing, or later while
dumping it into a JSONField. Nothing DecodeLab accepts needs deep nesting (a JSON Schema's
``$ref`` keeps even recursive schemas shallow), so input nested deeper than ``MAX_JSON_DEPTH``
is refused with an error naming where the nesting starts.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 64
PATH_SEGMENTS = 4  # presets[0].params.json_schema: where the deep part starts, not its full path


class TooDeep(ValueError):
    def __init__(self, path: str, limit: int) -> None:
        super().__init__(f"{path}: nested deeper than {limit} levels")
        self.path = path
        self.message = f"JSON nested deeper than {limit} levels"


def _join(path: list[str | int]) -> str:
    out = ""
    for part in path[:PATH_SEGMENTS]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def check_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise TooDeep when a dict or list in ``value`` sits more than ``limit`` levels deep.
    Iterative, so the check itself cannot overflow the stack."""
    stack: list[tuple[Any, list[str | int], int]] = [(value, [], 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > limit:
            raise TooDeep(_join(path), limit)
        if isinstance(node, dict):
            stack.extend((v, [*path, str(k)], depth + 1) for k, v in node.items() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend((v, [*path, i], depth + 1) for i, v in enumerate(node) if isinstance(v, (dict, list)))


def loads(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """json.loads for untrusted text: too deep is TooDeep (a ValueError), never RecursionError."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise TooDeep("body", limit) from None
    check_depth(value, limit)
    return value
