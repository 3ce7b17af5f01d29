"""Form handling for the preset and sweep pages: parameter inputs described from the strategies'
param_specs (workers.strategies), and form text turned into JSON values. Validation itself is
the services' (the same as the API's); this module only converts text.

The comparison form (runs/views.py) has similar private helpers; they name inputs per preset
row (presets-<key>-<name>) while a preset page edits one configuration, so the two stay apart.
"""

from __future__ import annotations

import json
from typing import Any

from decodelab.common import jsonlimits
from decodelab.common.errors import ApplicationError
from workers.strategies import STRATEGIES

NUMERIC_KINDS = ("int", "float")


def param_fields(strategy: str, values: dict[str, Any], errors: dict[str, str], draft_models: list[str]) -> list[dict]:
    """One entry per parameter input: its spec, the current value as text, and its error."""
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
                "input_name": f"param-{spec['name']}",
                "value": "" if value is None else value,
                "options": spec["options"] or (draft_models if spec["kind"] == "model" else []),
                "step": "any" if spec["kind"] == "float" else "1",
                "error": errors.get(f"params.{spec['name']}"),
            }
        )
    return fields


def coerce(kind: str, raw: str | None, field: str) -> Any:
    """Form text to a JSON value; None means 'not given' (the default applies)."""
    if kind == "bool":
        return raw in ("on", "true", "1")
    if raw is None or raw.strip() == "":
        return None
    if kind in NUMERIC_KINDS:
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            expected = "an integer" if kind == "int" else "a number"
            raise ApplicationError(f"must be {expected} (got {raw!r})", field=field) from None
    if kind == "json":
        try:
            return jsonlimits.loads(raw)
        except jsonlimits.TooDeep as exc:
            raise ApplicationError(exc.message, field=field) from None
        except json.JSONDecodeError as exc:
            raise ApplicationError(f"is not valid JSON: {exc}", field=field) from None
    if kind == "lines":
        return [line.strip() for line in raw.splitlines() if line.strip()]
    return raw


def parse_params(strategy: str, post) -> dict[str, Any]:
    if strategy not in STRATEGIES:
        return {}
    params = {}
    for spec in STRATEGIES[strategy].param_specs():
        value = coerce(spec["kind"], post.get(f"param-{spec['name']}"), f"params.{spec['name']}")
        if value is not None:
            params[spec["name"]] = value
    return params


def parse_preset(post) -> dict[str, Any]:
    """A preset form's fields as service arguments (strings converted, nothing validated)."""
    strategy = post.get("strategy", "greedy")
    max_new_tokens = coerce("int", post.get("max_new_tokens"), "max_new_tokens")
    seed = coerce("int", post.get("seed"), "seed")
    return {
        "name": post.get("name", "").strip(),
        "strategy": strategy,
        "params": parse_params(strategy, post),
        "model": post.get("model", ""),
        "max_new_tokens": 64 if max_new_tokens is None else max_new_tokens,
        "chat": post.get("chat") == "on",
        "stop": [line for line in post.get("stop", "").splitlines() if line],
        "seed_policy": post.get("seed_policy", "per-sample"),
        "seed": 0 if seed is None else seed,
    }


def parse_values(raw: str, kind: str, field: str) -> list[Any]:
    """A sweep axis typed as "0.7, 1.0, 1.3" (or one per line) to a list of typed values."""
    parts = [p.strip() for p in raw.replace("\n", ",").split(",") if p.strip()]
    if kind == "bool":
        return [p.lower() in ("true", "1", "on", "yes") for p in parts]
    if kind in NUMERIC_KINDS:
        return [coerce(kind, p, field) for p in parts]
    return parts


def sweepable(strategy: str) -> list[dict[str, Any]]:
    return [s for s in STRATEGIES[strategy].param_specs() if s["kind"] in ("int", "float", "bool", "choice")]
