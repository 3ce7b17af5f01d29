"""Experiment pages: list, new (prompt set x presets x samples), the live progress page with
cancel, the metrics page with charts, and export downloads."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from decodelab.common.decorators import researcher_required
from decodelab.common.errors import ApplicationError
from decodelab.experiments import aggregate, exports, forms, selectors, services
from decodelab.experiments.services import MAX_PRESETS_PER_EXPERIMENT, MAX_SAMPLES

HTMX_STOP_POLLING = 286


@researcher_required
@require_GET
def experiment_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "")
    status = status if status in selectors.STATUSES else ""
    experiments = selectors.experiment_list(user=request.user, status=status).prefetch_related("configs")
    items = [{"e": e, "progress": selectors.experiment_list_status(e)} for e in experiments[:200]]
    return render(
        request, "experiments/experiment_list.html", {"items": items, "status": status, "statuses": selectors.STATUSES}
    )


def _new_context(request: HttpRequest, form: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {
        "form": form,
        "errors": errors,
        "prompt_sets": selectors.prompt_set_list(user=request.user),
        # Oldest first, so a sweep's presets keep the order of its values.
        "presets": selectors.preset_list(user=request.user).order_by("created_at")[:500],
        "max_presets": MAX_PRESETS_PER_EXPERIMENT,
        "max_samples": MAX_SAMPLES,
    }


@researcher_required
@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        chosen = [p for p in request.GET.get("presets", "").split(",") if p]
        form = {
            "name": "",
            "prompt_set": request.GET.get("prompt_set", ""),
            "presets": chosen,
            "samples": 1,
            "seeds": "",
            "skip_duplicates": True,
        }
        return render(request, "experiments/experiment_new.html", _new_context(request, form, {}))
    post = request.POST
    form = {
        "name": post.get("name", ""),
        "prompt_set": post.get("prompt_set", ""),
        "presets": post.getlist("presets"),
        "samples": post.get("samples", "1"),
        "seeds": post.get("seeds", ""),
        "skip_duplicates": post.get("skip_duplicates") == "on",
    }
    try:
        prompt_set = selectors.prompt_set_find(user=request.user, prompt_set_id=form["prompt_set"])
        if prompt_set is None:
            raise ApplicationError("choose one of your prompt sets", field="prompt_set")
        samples = forms.coerce("int", form["samples"], "samples")
        seeds = forms.parse_values(form["seeds"], "int", "seeds")
        presets = selectors.presets_by_ids(user=request.user, ids=form["presets"])
        experiment = services.experiment_create(
            owner=request.user,
            name=form["name"],
            prompt_set=prompt_set,
            presets=presets,
            samples=1 if samples is None else samples,
            seeds=seeds,
            skip_duplicates=form["skip_duplicates"],
        )
    except ApplicationError as exc:
        context = _new_context(request, form, {exc.field or "form": exc.message})
        return render(request, "experiments/experiment_new.html", context, status=exc.status_code)
    return redirect("experiments:experiment_detail", experiment_id=experiment.id)


def _eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@researcher_required
@require_GET
def experiment_detail(request: HttpRequest, experiment_id) -> HttpResponse:
    return _render_detail(request, experiment_id)


def _render_detail(request: HttpRequest, experiment_id) -> HttpResponse:
    """The page, or for htmx its progress section (HTTP 286 once every run has finished)."""
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    progress = selectors.experiment_progress(experiment)
    context = {"experiment": experiment, "progress": progress, "eta": _eta_text(progress["eta_s"])}
    if request.htmx:
        response = render(request, "experiments/experiment_detail.html#progress", context)
        if progress["done"]:
            response.status_code = HTMX_STOP_POLLING
        return response
    return render(request, "experiments/experiment_detail.html", context)


@researcher_required
@require_POST
def experiment_cancel(request: HttpRequest, experiment_id) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    services.experiment_cancel(experiment=experiment)
    if request.htmx:
        return _render_detail(request, experiment_id)
    return redirect("experiments:experiment_detail", experiment_id=experiment_id)


METRIC_COLUMNS = [
    ("tokens_per_s", "Tokens/s", "Decode phase only: (new tokens - 1) / decode time, per run."),
    ("ttft_ms", "Time to first token (ms)", "prefill_ms per run: prompt forward pass plus one step."),
    ("output_tokens", "Output length (tokens)", "Tokens per output."),
    ("distinct_1", "distinct-1", "Distinct unigrams / unigrams, pooled over a cell's outputs (word tokens)."),
    ("distinct_2", "distinct-2", "Distinct bigrams / bigrams, pooled over a cell's outputs (word tokens)."),
    ("self_bleu", "self-BLEU", "Mean BLEU-4 (BLEU+1 smoothing) of each output of a cell against the others."),
    ("repetition", "Repetition (rep-2)", "Share of an output's word bigrams that repeat an earlier one."),
    ("mean_logprob", "Mean logprob", "Mean raw-model logprob of an output's tokens (from its trace)."),
]
RATE_COLUMNS = [
    ("empty_rate", "Empty", "Outputs whose text is blank."),
    ("nonterminating_rate", "Non-terminating", "Outputs that hit max_new_tokens (finish_reason length)."),
    ("validity_rate", "Valid", "Constrained runs: outputs the independent check found valid."),
]


def _num(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _summary_text(s: dict[str, Any]) -> dict[str, Any] | None:
    if s["median"] is None:
        return None
    return {"median": _num(s["median"]), "range": f"{_num(s['p25'])} to {_num(s['p75'])}", "n": s["n"]}


@researcher_required
@require_GET
def experiment_metrics(request: HttpRequest, experiment_id) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    metrics = selectors.experiment_metrics(experiment)
    for c in metrics["configurations"]:
        c["cells"] = [_summary_text(c[key]) for key, _label, _d in METRIC_COLUMNS]
        c["rate_cells"] = [c[key] for key, _label, _d in RATE_COLUMNS]
    chart = {
        "labels": [c["label"] for c in metrics["configurations"]],
        "hashes": [c["config_hash"] for c in metrics["configurations"]],
        "series": {key: [c[key] for c in metrics["configurations"]] for key in aggregate.SUMMARISED},
        "names": {key: label for key, label, _d in METRIC_COLUMNS},
    }
    context = {
        "experiment": experiment,
        "metrics": metrics,
        "columns": METRIC_COLUMNS,
        "rates": RATE_COLUMNS,
        "chart": chart,
        "progress": selectors.experiment_progress(experiment),
    }
    return render(request, "experiments/experiment_metrics.html", context)


@researcher_required
@require_GET
def experiment_export(request: HttpRequest, experiment_id) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    fmt = request.GET.get("format", "csv")
    if fmt not in exports.FORMATS:
        fmt = "csv"
    return exports.export_response(experiment, fmt, request.GET.get("traces") in ("1", "on", "true"))
