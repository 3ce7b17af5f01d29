"""Browser pages for comparisons (htmx): list, new-comparison form, live side-by-side page."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from decodelab.catalog import selectors as catalog
from decodelab.common import paramforms
from decodelab.common.decorators import researcher_required
from decodelab.common.errors import ApplicationError
from decodelab.runs import presenters, selectors, services
from decodelab.runs.metrics_table import metrics_rows
from workers.protocol import MAX_NEW_TOKENS, MAX_PROMPT_CHARS
from workers.strategies import STRATEGIES

HTMX_STOP_POLLING = 286

DEFAULT_PRESETS: list[dict[str, Any]] = [
    {"strategy": "greedy", "params": {}},
    {"strategy": "beam", "params": {"num_beams": 4, "num_return_sequences": 2}},
    {"strategy": "sampling", "params": {"temperature": 0.7, "top_p": 0.9}, "seed": 0},
]


def _preset_row(
    key: str, index: int, preset: dict[str, Any], errors: dict[str, str] | None = None, model: str = ""
) -> dict:
    errors = errors or {}
    strategy = preset.get("strategy") if preset.get("strategy") in STRATEGIES else "greedy"
    return {
        "key": key,
        "strategy": strategy,
        "params": paramforms.param_fields(
            strategy,
            preset.get("params") or {},
            errors,
            input_prefix=f"presets-{key}-",
            error_prefix=f"presets[{index}].params.",
            draft_models=catalog.draft_models_for(model or settings.DECODELAB_DEFAULT_MODEL),
        ),
        "seed": preset.get("seed", 0),
        "label": preset.get("label", ""),
        "errors": [msg for field, msg in errors.items() if field.startswith(f"presets[{index}]")],
    }


def _parse_presets(post) -> tuple[list[str], list[dict[str, Any]]]:
    """Read preset rows from form fields named presets-<key>-<name>, in the order they appear."""
    keys: list[str] = []
    for name in post:
        if name.startswith("presets-") and name.endswith("-strategy"):
            keys.append(name[len("presets-") : -len("-strategy")])
    presets = []
    for i, key in enumerate(keys):
        strategy = post.get(f"presets-{key}-strategy")
        preset: dict[str, Any] = {"strategy": strategy, "params": {}}
        if strategy in STRATEGIES:
            for spec in STRATEGIES[strategy].param_specs():
                name = spec["name"]
                value = paramforms.coerce(
                    spec["kind"], post.get(f"presets-{key}-{name}"), f"presets[{i}].params.{name}"
                )
                if value is not None:
                    preset["params"][name] = value
        seed = paramforms.coerce("int", post.get(f"presets-{key}-seed"), f"presets[{i}].seed")
        preset["seed"] = 0 if seed is None else seed
        label = (post.get(f"presets-{key}-label") or "").strip()
        if label:
            preset["label"] = label
        presets.append(preset)
    return keys, presets


def _form_context(form: dict[str, Any], rows: list[dict], errors: dict[str, str]) -> dict[str, Any]:
    return {
        "form": form,
        "rows": rows,
        "errors": errors,
        "strategies": catalog.strategy_list(),
        "models": catalog.model_list(),
        "max_prompt_chars": MAX_PROMPT_CHARS,
        "max_new_tokens_limit": MAX_NEW_TOKENS,
        "max_presets": settings.DECODELAB_MAX_PRESETS,
    }


@researcher_required
@require_GET
def comparison_list(request: HttpRequest) -> HttpResponse:
    comparisons = list(selectors.comparison_list(user=request.user)[:200])
    items = [{"c": c, "status": selectors.comparison_status(c), "runs": list(c.runs.all())} for c in comparisons]
    return render(request, "runs/comparison_list.html", {"items": items})


@researcher_required
@require_http_methods(["GET", "POST"])
def comparison_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        form = {"prompt": "", "chat": True, "max_new_tokens": 64, "model": settings.DECODELAB_DEFAULT_MODEL, "stop": ""}
        rows = [_preset_row(str(i), i, p) for i, p in enumerate(DEFAULT_PRESETS)]
        return render(request, "runs/comparison_new.html", _form_context(form, rows, {}))

    post = request.POST
    form = {
        "prompt": post.get("prompt", ""),
        "chat": post.get("chat") == "on",
        "max_new_tokens": post.get("max_new_tokens", ""),
        "model": post.get("model", ""),
        "stop": post.get("stop", ""),
    }
    keys: list[str] = []
    presets: list[dict[str, Any]] = []
    try:
        keys, presets = _parse_presets(post)
        try:
            max_new_tokens: Any = int(form["max_new_tokens"])
        except ValueError:
            raise ApplicationError(
                f"must be an integer between 1 and {MAX_NEW_TOKENS}", field="max_new_tokens"
            ) from None
        comparison = services.comparison_create(
            owner=request.user,
            prompt=form["prompt"],
            chat=form["chat"],
            max_new_tokens=max_new_tokens,
            model=form["model"],
            stop=[line for line in form["stop"].splitlines() if line],
            presets=presets,
        )
    except ApplicationError as exc:
        errors = {exc.field or "form": exc.message}
        if not keys:
            keys, presets = ["0"], [{"strategy": "greedy"}]
        rows = [_preset_row(k, i, p, errors, form["model"]) for i, (k, p) in enumerate(zip(keys, presets, strict=True))]
        return render(request, "runs/comparison_new.html", _form_context(form, rows, errors), status=exc.status_code)
    return redirect("runs:comparison_detail", comparison_id=comparison.id)


@researcher_required
@require_GET
def preset_row(request: HttpRequest) -> HttpResponse:
    """One preset row, for 'Add preset' and for switching a row's strategy."""
    key = "".join(ch for ch in request.GET.get("key", "0") if ch.isalnum())[:20] or "0"
    # 'Add preset' sends strategy=...; a row's own select sends presets-<key>-strategy=...
    strategy = request.GET.get("strategy") or request.GET.get(f"presets-{key}-strategy", "greedy")
    preset = {"strategy": strategy}
    context = {
        "row": _preset_row(key, 0, preset, model=request.GET.get("model", "")),
        "strategies": catalog.strategy_list(),
    }
    return render(request, "runs/comparison_new.html#preset_row", context)


@researcher_required
@require_POST
def comparison_cancel(request: HttpRequest, comparison_id) -> HttpResponse:
    """Cancel the comparison's unfinished runs; htmx gets the updated runs section."""
    comparison = selectors.comparison_get(user=request.user, comparison_id=comparison_id)
    services.runs_cancel(runs=list(comparison.runs.all()))
    if request.htmx:
        return _render_detail(request, comparison_id)
    return redirect("runs:comparison_detail", comparison_id=comparison_id)


@researcher_required
@require_GET
def comparison_detail(request: HttpRequest, comparison_id) -> HttpResponse:
    return _render_detail(request, comparison_id)


def _render_detail(request: HttpRequest, comparison_id) -> HttpResponse:
    """The page, or for htmx its runs section (HTTP 286 once every run is finished)."""
    comparison = selectors.comparison_get(user=request.user, comparison_id=comparison_id)
    runs = list(comparison.runs.all())
    presenters.annotate(runs)
    status = selectors.comparison_status(comparison)
    finished = status in ("finished", "failed", "cancelled")
    context = {
        "comparison": comparison,
        "runs": runs,
        "status": status,
        "finished": finished,
        "metrics": metrics_rows(runs),
    }
    if request.htmx:
        response = render(request, "runs/comparison_detail.html#runs", context)
        if finished:
            response.status_code = HTMX_STOP_POLLING
        return response
    return render(request, "runs/comparison_detail.html", context)
