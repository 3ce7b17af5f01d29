"""Form handling for the preset and sweep pages: parameter inputs described from the strategies'
param_specs (workers.strategies), and form text turned into JSON values. Validation itself is
the services' (the same as the API's); this module only converts text.

The comparison form (runs/views.py) has similar private helpers; they name inputs per preset
row (presets-<key>-<name>) while a preset page edits one configuration, so the two stay apart.
"""

from __future__ import annotations

from typing import Any

from decodelab.common import paramforms
from workers.strategies import STRATEGIES


def param_fields(strategy: str, values: dict[str, Any], errors: dict[str, str], draft_models: list[str]) -> list[dict]:
    """One entry per parameter input of the preset form (inputs named param-<name>)."""
    return paramforms.param_fields(
        strategy, values, errors, input_prefix="param-", error_prefix="params.", draft_models=draft_models
    )


coerce = paramforms.coerce


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
    if kind in ("int", "float"):
        return [coerce(kind, p, field) for p in parts]
    return parts


def sweepable(strategy: str) -> list[dict[str, Any]]:
    return [s for s in STRATEGIES[strategy].param_specs() if s["kind"] in ("int", "float", "bool", "choice")]
