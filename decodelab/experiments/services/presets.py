"""Presets (saved decoder configurations, hashed exactly as runs are) and sweeps that make them.

Validated by the same torch-free functions the comparison form and the worker use
(workers.strategies, workers.protocol), hashed by decodelab.catalog.confighash."""

from __future__ import annotations

import itertools
from typing import Any

from django.conf import settings
from django.db import transaction

from decodelab.catalog import selectors as catalog
from decodelab.catalog.confighash import config_hash, config_identity
from decodelab.common.errors import ApplicationError
from decodelab.experiments.models import (
    Preset,
    SeedPolicy,
    Sweep,
)
from decodelab.experiments.services.common import checked_name
from decodelab.runs import services as runs_services
from workers.protocol import ParamError, check_model_config, validate_max_new_tokens, validate_seed, validate_stop
from workers.strategies import STRATEGIES, build_config

MAX_SWEEP_VALUES = 10
MAX_SWEEP_POINTS = 25
SWEEPABLE_KINDS = ("int", "float", "bool", "choice")


# --- presets -----------------------------------------------------------------------------


def _check_config(
    *, strategy: Any, params: Any, model: Any, max_new_tokens: Any, chat: Any, stop: Any, seed_policy: Any, seed: Any
) -> dict[str, Any]:
    """Everything a preset holds, validated and normalised (defaults filled in)."""
    offered = catalog.offered_model_names()
    model = model or settings.DECODELAB_DEFAULT_MODEL
    if model not in offered:
        raise ApplicationError(f"unknown model {model!r} (available: {', '.join(offered)})", field="model")
    if not isinstance(chat, bool):
        raise ApplicationError("must be true or false", field="chat")
    if seed_policy not in SeedPolicy.values:
        raise ApplicationError(f"must be one of {', '.join(SeedPolicy.values)}", field="seed_policy")
    try:
        config = build_config(strategy, params)
        check_model_config(model, config)
        max_new_tokens = validate_max_new_tokens(max_new_tokens)
        stop = validate_stop([] if stop is None else stop)
        seed = validate_seed(seed)
    except ParamError as exc:
        raise ApplicationError(exc.message, field=exc.field) from exc
    draft = getattr(config, "draft_model", None)
    if draft and draft not in offered:
        raise ApplicationError(f"{draft!r} is not installed here", field="params.draft_model")
    return {
        "strategy": config.strategy,
        "params": config.to_params(),
        "model": model,
        "max_new_tokens": max_new_tokens,
        "chat": chat,
        "stop": stop,
        "seed_policy": seed_policy,
        "seed": seed,
    }


def preset_identity(fields: dict[str, Any]) -> dict[str, Any]:
    """The identity runs made from these fields will be hashed with (same function, same
    arguments as runs.services.comparison_create, the model's current revision included)."""
    return config_identity(
        model=fields["model"],
        strategy=fields["strategy"],
        params=fields["params"],
        max_new_tokens=fields["max_new_tokens"],
        chat=fields["chat"],
        stop=fields["stop"],
        seed_policy=fields["seed_policy"],
        model_revision=catalog.model_revision(fields["model"]),
    )


def _defaultchecked_name(fields: dict[str, Any]) -> str:
    return runs_services.preset_label(fields["strategy"], fields["params"])[:200]


@transaction.atomic
def preset_create(
    *,
    owner,
    strategy: Any,
    params: Any = None,
    name: Any = "",
    model: Any = None,
    max_new_tokens: Any = 64,
    chat: Any = True,
    stop: Any = None,
    seed_policy: Any = SeedPolicy.PER_SAMPLE,
    seed: Any = 0,
    sweep: Sweep | None = None,
    sweep_point: dict[str, Any] | None = None,
    cloned_from: Preset | None = None,
) -> Preset:
    fields = _check_config(
        strategy=strategy,
        params=params,
        model=model,
        max_new_tokens=max_new_tokens,
        chat=chat,
        stop=stop,
        seed_policy=seed_policy,
        seed=seed,
    )
    identity = preset_identity(fields)
    preset = Preset(
        owner=owner,
        name=checked_name(name) if name else _defaultchecked_name(fields),
        config_hash=config_hash(identity),
        identity=identity,
        sweep=sweep,
        sweep_point=sweep_point or {},
        cloned_from=cloned_from,
        **fields,
    )
    preset.full_clean()
    preset.save()
    return preset


EDITABLE = ("name", "strategy", "params", "model", "max_new_tokens", "chat", "stop", "seed_policy", "seed")


@transaction.atomic
def preset_update(*, preset: Preset, **changes: Any) -> Preset:
    """Edit in place and re-hash. Experiments that used the preset keep their own copy of the
    configuration (ExperimentConfig) and their runs keep their params and hash, so an edit never
    rewrites history; a changed configuration simply has a new hash from now on."""
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ApplicationError(f"cannot be edited (editable: {', '.join(EDITABLE)})", field=unknown[0])
    current = {k: getattr(preset, k) for k in EDITABLE}
    if "strategy" in changes and changes["strategy"] != preset.strategy and "params" not in changes:
        current["params"] = {}  # another strategy's parameters mean nothing to the new one
    current.update(changes)
    name = current.pop("name")
    fields = _check_config(**current)
    identity = preset_identity(fields)
    for key, value in fields.items():
        setattr(preset, key, value)
    preset.name = checked_name(name) if name else _defaultchecked_name(fields)
    preset.identity = identity
    preset.config_hash = config_hash(identity)
    preset.full_clean()
    preset.save()
    return preset


@transaction.atomic
def preset_clone(*, preset: Preset, name: Any = "", **changes: Any) -> Preset:
    fields = {k: getattr(preset, k) for k in EDITABLE if k != "name"}
    if "strategy" in changes and changes["strategy"] != preset.strategy and "params" not in changes:
        fields["params"] = {}
    fields.update(changes)
    return preset_create(owner=preset.owner, name=name or f"{preset.name} (copy)"[:200], cloned_from=preset, **fields)


@transaction.atomic
def preset_delete(*, preset: Preset) -> None:
    preset.delete()  # experiments keep their ExperimentConfig copy (preset link set to null)


# --- sweeps ------------------------------------------------------------------------------


def _sweep_axis(strategy: str, param: Any, values: Any, axis: str) -> tuple[str, list[Any]]:
    specs = {s["name"]: s for s in STRATEGIES[strategy].param_specs()}
    sweepable = sorted(n for n, s in specs.items() if s["kind"] in SWEEPABLE_KINDS)
    if param not in specs or specs[param]["kind"] not in SWEEPABLE_KINDS:
        raise ApplicationError(
            f"{param!r} is not a numeric or choice parameter of {strategy} (choose from: {', '.join(sweepable)})",
            field=f"{axis}.param",
        )
    if not isinstance(values, list) or not 1 <= len(values) <= MAX_SWEEP_VALUES:
        raise ApplicationError(f"give 1 to {MAX_SWEEP_VALUES} values", field=f"{axis}.values")
    seen = []
    for i, v in enumerate(values):
        if v in seen:
            raise ApplicationError(f"{v!r} appears twice", field=f"{axis}.values[{i}]")
        seen.append(v)
    return param, list(values)


@transaction.atomic
def sweep_create(
    *, owner, base: Any, x: Any, y: Any = None, name: Any = "", base_preset: Preset | None = None
) -> Sweep:
    """Presets for every combination of the x values (and y values): like an XYZ plot.

    ``base`` is a preset's fields (strategy, params, model, ...) or ``base_preset`` one of the
    user's presets; ``x``/``y`` are ``{"param": name, "values": [...]}``. Each point is
    validated like any preset (the error names the axis and value); at most
    MAX_SWEEP_POINTS points. A point equal to another (same hash) is refused.
    """
    if base_preset is not None:
        base = {k: getattr(base_preset, k) for k in EDITABLE if k != "name"}
    if not isinstance(base, dict) or "strategy" not in base:
        raise ApplicationError("give a base configuration with a strategy, or a base preset", field="base")
    allowed = set(EDITABLE) - {"name"}
    unknown = sorted(set(base) - allowed)
    if unknown:
        raise ApplicationError(f"unknown field (allowed: {', '.join(sorted(allowed))})", field=f"base.{unknown[0]}")
    strategy = base["strategy"]
    if strategy not in STRATEGIES:
        raise ApplicationError(f"unknown strategy {strategy!r}", field="base.strategy")
    axes = []
    for axis, spec in (("x", x), ("y", y)):
        if spec in (None, {}) and axis == "y":
            continue
        if not isinstance(spec, dict):
            raise ApplicationError("must be an object with param and values", field=axis)
        axes.append((axis, *_sweep_axis(strategy, spec.get("param"), spec.get("values"), axis)))
    if len(axes) == 2 and axes[0][1] == axes[1][1]:
        raise ApplicationError("sweep two different parameters", field="y.param")
    points = list(itertools.product(*[[(axis, p, i, v) for i, v in enumerate(values)] for axis, p, values in axes]))
    if len(points) > MAX_SWEEP_POINTS:
        raise ApplicationError(
            f"{len(points)} combinations; at most {MAX_SWEEP_POINTS} per sweep", field="y.values" if y else "x.values"
        )
    base_name = checked_name(name) if name else runs_services.preset_label(strategy, base.get("params") or {})[:120]
    sweep = Sweep(
        owner=owner,
        name=base_name,
        base=base,
        x_param=axes[0][1],
        x_values=axes[0][2],
        y_param=axes[1][1] if len(axes) > 1 else "",
        y_values=axes[1][2] if len(axes) > 1 else [],
    )
    sweep.full_clean()
    sweep.save()
    seen: dict[str, str] = {}
    for point in points:
        params = dict(base.get("params") or {})
        for _axis, param, _i, value in point:
            params[param] = value
        label = ", ".join(f"{param}={value}" for _a, param, _i, value in point)
        try:
            preset = preset_create(
                owner=owner,
                **{**base, "params": params},
                name=f"{base_name} · {label}"[:200],
                sweep=sweep,
                sweep_point={param: value for _a, param, _i, value in point},
            )
        except ApplicationError as exc:
            axis, _p, i, _v = next(((a, p, i, v) for a, p, i, v in point if exc.field == f"params.{p}"), point[-1])
            raise ApplicationError(f"{label}: {exc.message}", field=f"{axis}.values[{i}]") from exc
        if preset.config_hash in seen:
            raise ApplicationError(f"{label} is the same configuration as {seen[preset.config_hash]}", field="x.values")
        seen[preset.config_hash] = label
    return sweep
