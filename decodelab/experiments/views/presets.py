"""Preset pages (list, new, edit, clone, delete) and the sweep builder."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from decodelab.catalog import selectors as catalog
from decodelab.common.decorators import researcher_required
from decodelab.common.errors import ApplicationError
from decodelab.experiments import forms, selectors, services
from decodelab.experiments.models import SeedPolicy
from decodelab.experiments.services import MAX_SWEEP_POINTS, MAX_SWEEP_VALUES
from workers.protocol import MAX_NEW_TOKENS
from workers.strategies import STRATEGIES

NEW_PRESET: dict[str, Any] = {
    "name": "",
    "strategy": "sampling",
    "params": {},
    "model": "",
    "max_new_tokens": 64,
    "chat": True,
    "stop": [],
    "seed_policy": SeedPolicy.PER_SAMPLE,
    "seed": 0,
}


def _form_context(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    model = values.get("model") or settings.DECODELAB_DEFAULT_MODEL
    strategy = values["strategy"] if values.get("strategy") in STRATEGIES else "greedy"
    return {
        "values": {**values, "strategy": strategy, "model": model, "stop_text": "\n".join(values.get("stop") or [])},
        "fields": forms.param_fields(strategy, values.get("params") or {}, errors, catalog.draft_models_for(model)),
        "errors": errors,
        "strategies": catalog.strategy_list(),
        "models": catalog.model_list(),
        "seed_policies": SeedPolicy.choices,
        "max_new_tokens_limit": MAX_NEW_TOKENS,
        "fields_url": reverse("experiments:preset_fields"),
        "fields_target": "#param-fields",
    }


@researcher_required
@require_GET
def preset_list(request: HttpRequest) -> HttpResponse:
    q = request.GET
    presets = selectors.preset_list(user=request.user, strategy=q.get("strategy", ""), q=q.get("q", ""))[:500]
    filters = {"strategy": q.get("strategy", ""), "q": q.get("q", "")}
    context = {"presets": presets, "strategies": sorted(STRATEGIES), "filters": filters}
    return render(request, "experiments/presets.html", context)


def _save(request: HttpRequest, preset=None) -> HttpResponse:
    values: dict[str, Any] = {"strategy": request.POST.get("strategy", "greedy")}
    try:
        values = forms.parse_preset(request.POST)
        if preset is None:
            preset = services.preset_create(owner=request.user, **values)
        else:
            preset = services.preset_update(preset=preset, **values)
    except ApplicationError as exc:
        context = _form_context({**NEW_PRESET, **values}, {exc.field or "form": exc.message})
        context["preset"] = preset
        return render(request, "experiments/preset_form.html", context, status=exc.status_code)
    return redirect(reverse("experiments:preset_list") + f"#preset-{preset.id}")


@researcher_required
@require_http_methods(["GET", "POST"])
def preset_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _save(request)
    return render(request, "experiments/preset_form.html", {**_form_context(NEW_PRESET, {}), "preset": None})


@researcher_required
@require_http_methods(["GET", "POST"])
def preset_edit(request: HttpRequest, preset_id) -> HttpResponse:
    preset = selectors.preset_get(user=request.user, preset_id=preset_id)
    if request.method == "POST":
        return _save(request, preset)
    values = {k: getattr(preset, k) for k in services.EDITABLE}
    return render(request, "experiments/preset_form.html", {**_form_context(values, {}), "preset": preset})


@researcher_required
@require_GET
def preset_fields(request: HttpRequest) -> HttpResponse:
    """The parameter inputs of another strategy (the form's strategy select swaps them in)."""
    values = {"strategy": request.GET.get("strategy", "greedy"), "model": request.GET.get("model", "")}
    return render(request, "experiments/_param_fields.html", _form_context(values, {}))


@researcher_required
@require_POST
def preset_clone(request: HttpRequest, preset_id) -> HttpResponse:
    clone = services.preset_clone(preset=selectors.preset_get(user=request.user, preset_id=preset_id))
    return redirect("experiments:preset_edit", preset_id=clone.id)


@researcher_required
@require_POST
def preset_delete(request: HttpRequest, preset_id) -> HttpResponse:
    services.preset_delete(preset=selectors.preset_get(user=request.user, preset_id=preset_id))
    return redirect("experiments:preset_list")


# --- sweeps ------------------------------------------------------------------------------


def _sweep_context(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    context = _form_context(values, errors)
    context["sweepable"] = forms.sweepable(context["values"]["strategy"])
    context["axes"] = values.get("axes") or {"x_param": "", "x_values": "", "y_param": "", "y_values": ""}
    context["max_points"] = MAX_SWEEP_POINTS
    context["max_values"] = MAX_SWEEP_VALUES
    context["fields_url"] = reverse("experiments:sweep_fields")
    context["fields_target"] = "#strategy-fields"
    return context


@researcher_required
@require_http_methods(["GET", "POST"])
def sweep_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        strategy = request.GET.get("strategy", "sampling")
        return render(request, "experiments/sweep_new.html", _sweep_context({**NEW_PRESET, "strategy": strategy}, {}))
    post = request.POST
    axes = {k: post.get(k, "") for k in ("x_param", "x_values", "y_param", "y_values")}
    values: dict[str, Any] = {"strategy": post.get("strategy", "greedy"), "axes": axes}
    try:
        values = {**forms.parse_preset(post), "axes": axes}
        specs = forms.sweepable(values["strategy"]) if values["strategy"] in STRATEGIES else []
        kinds = {s["name"]: s["kind"] for s in specs}

        def axis(name: str) -> dict[str, Any]:
            param = axes[f"{name}_param"]
            raw = axes[f"{name}_values"]
            return {"param": param, "values": forms.parse_values(raw, kinds.get(param, "float"), f"{name}.values")}

        x = axis("x")
        y = axis("y") if axes["y_param"] else None
        base = {k: v for k, v in values.items() if k not in ("name", "axes")}
        sweep = services.sweep_create(owner=request.user, base=base, x=x, y=y, name=values["name"])
    except ApplicationError as exc:
        context = _sweep_context({**NEW_PRESET, **values}, {exc.field or "form": exc.message})
        return render(request, "experiments/sweep_new.html", context, status=exc.status_code)
    return redirect("experiments:sweep_detail", sweep_id=sweep.id)


@researcher_required
@require_GET
def sweep_fields(request: HttpRequest) -> HttpResponse:
    """Parameter inputs and sweepable parameters of another strategy (htmx swap)."""
    values = {**NEW_PRESET, "strategy": request.GET.get("strategy", "greedy"), "model": request.GET.get("model", "")}
    return render(request, "experiments/sweep_new.html#strategy_fields", _sweep_context(values, {}))


@researcher_required
@require_GET
def sweep_detail(request: HttpRequest, sweep_id) -> HttpResponse:
    sweep = selectors.sweep_get(user=request.user, sweep_id=sweep_id)
    presets = list(sweep.presets.all())
    x_values = sweep.x_values
    y_values = sweep.y_values or [None]
    table = []
    for y in y_values:
        cells = []
        for x in x_values:
            point = {sweep.x_param: x, **({sweep.y_param: y} if sweep.y_param else {})}
            cells.append(next((p for p in presets if p.sweep_point == point), None))
        table.append({"y": y, "cells": cells})
    ids = ",".join(str(p.id) for p in presets)
    context = {"sweep": sweep, "presets": presets, "table": table, "preset_ids": ids}
    return render(request, "experiments/sweep_detail.html", context)
