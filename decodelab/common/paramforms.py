"""Decoder parameters in HTML forms, shared by the comparison form and the workbench's preset
form: the inputs to show for a strategy (from its torch-free ``param_specs``), and form text
turned back into JSON values."""

from __future__ import annotations

import json
from typing import Any

from decodelab.common import jsonlimits
from decodelab.common.errors import ApplicationError
from workers.strategies import STRATEGIES


def param_fields(
    strategy: str,
    values: dict[str, Any],
    errors: dict[str, str],
    *,
    input_prefix: str,
    error_prefix: str,
    draft_models: list[str],
) -> list[dict]:
    """One entry per parameter input of ``strategy``: its spec, the current value as text, the
    input's name (``input_prefix`` + name) and its error (keyed ``error_prefix`` + name)."""
    fields = []
    for spec in STRATEGIES[strategy].param_specs():
        value = values.get(spec["name"], spec["default"])
        if spec["kind"] == "json" and isinstance(value, dict):
            value = json.dumps(value, indent=2)
        elif spec["kind"] == "lines" and isinstance(value, list):
            value = "\n".join(value)
        fields.append(
            {
                **spec,
                "input_name": f"{input_prefix}{spec['name']}",
                "value": "" if value is None else value,
                # A draft model must share the target's tokenizer: the caller offers only those.
                "options": spec["options"] or (draft_models if spec["kind"] == "model" else []),
                "step": "any" if spec["kind"] == "float" else "1",
                "error": errors.get(f"{error_prefix}{spec['name']}"),
            }
        )
    return fields


def coerce(kind: str, raw: str | None, field: str) -> Any:
    """Form text to a parameter's JSON value; None means 'not given' (the default applies)."""
    if kind == "bool":
        return raw in ("on", "true", "1")
    if raw is None or raw.strip() == "":
        return None
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            expected = "an integer" if kind == "int" else "a number"
            raise ApplicationError(f"must be {expected} (got {raw!r})", field=field) from None
    if kind == "json":
        try:
            return jsonlimits.loads(raw)  # json.loads, but deep nesting is an error, not a RecursionError
        except jsonlimits.TooDeep as exc:
            raise ApplicationError(exc.message, field=field) from None
        except json.JSONDecodeError as exc:
            raise ApplicationError(f"is not valid JSON: {exc}", field=field) from None
    if kind == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    return raw
