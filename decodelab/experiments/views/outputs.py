"""Output pages of an experiment: the grid (prompts x configurations), one cell (every sample
with token views), one prompt side by side (2-up or 4-up), and the token diff of two outputs.

Token views reuse the comparison page's presenters (runs.presenters) and its CSS.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from decodelab.common.decorators import researcher_required
from decodelab.experiments import selectors, tokenviews
from decodelab.runs import presenters

GRID_PAGE_SIZE = 100


@researcher_required
@require_GET
def experiment_grid(request: HttpRequest, experiment_id) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    page = Paginator(selectors.experiment_items(experiment), GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    grid = selectors.experiment_grid(experiment, list(page.object_list))
    # Links built by string from one reverse(): a {% url %} per cell is a third of the render time
    # of a 600-cell page.
    base = reverse("experiments:experiment_detail", args=[experiment.id])
    for row in grid["rows"]:
        row["href"] = f"{base}prompts/{row['item'].id}/"
        for cell in row["cells"]:
            cell["href"] = f"{base}cells/{row['item'].id}/{cell['config'].config_hash}/"
            cell["shown"] = cell["runs"][:2]
            cell["more"] = len(cell["runs"]) - 2
    progress = selectors.experiment_progress(experiment)
    context = {"experiment": experiment, "grid": grid, "page": page, "progress": progress}
    return render(request, "experiments/grid.html", context)


def _annotate_outputs(runs: list) -> None:
    presenters.annotate(runs)
    for run in runs:
        for out in run.outputs.all():
            out.ref = f"{run.id}:{out.index}"
            histogram = tokenviews.acceptance_histogram(out.trace)
            out.histogram = sorted(histogram.items()) if histogram else None
            out.histogram_max = max(histogram.values()) if histogram else 0


@researcher_required
@require_GET
def experiment_cell(request: HttpRequest, experiment_id, item_id: int, config_hash: str) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    item, config, runs = selectors.experiment_cell(experiment, item_id=item_id, config_hash=config_hash)
    _annotate_outputs(runs)
    refs = [out.ref for run in runs for out in run.outputs.all()]
    context = {"experiment": experiment, "item": item, "config": config, "runs": runs, "refs": refs}
    return render(request, "experiments/cell.html", context)


@researcher_required
@require_GET
def experiment_prompt(request: HttpRequest, experiment_id, item_id: int) -> HttpResponse:
    """One prompt side by side: 2 or 4 configurations (``?c=HASH`` repeated), one sample."""
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    item, runs = selectors.experiment_prompt_runs(experiment, item_id=item_id)
    configs = list(experiment.configs.all())
    layout = 4 if request.GET.get("layout") == "4" else 2
    chosen = [h for h in request.GET.getlist("c") if any(c.config_hash == h for c in configs)][:layout]
    for c in configs:
        if len(chosen) >= min(layout, len(configs)):
            break
        if c.config_hash not in chosen:
            chosen.append(c.config_hash)
    try:
        sample = max(0, min(int(request.GET.get("sample", 0)), experiment.samples - 1))
    except ValueError:
        sample = 0
    by_key = {(r.config_hash, r.sample): r for r in runs}
    columns = []
    for h in chosen:
        config = next(c for c in configs if c.config_hash == h)
        columns.append({"config": config, "run": by_key.get((h, sample))})
    shown = [col["run"] for col in columns if col["run"] is not None]
    _annotate_outputs(shown)
    first_outputs = [col["run"].outputs.all()[0].ref for col in columns if col["run"] and col["run"].outputs.all()]
    context = {
        "experiment": experiment,
        "item": item,
        "configs": configs,
        "columns": columns,
        "layout": layout,
        "sample": sample,
        "samples": range(experiment.samples),
        "slots": range(min(layout, len(configs))),
        "chosen": chosen,
        "diff_pair": first_outputs[:2] if len(first_outputs) >= 2 else None,
    }
    return render(request, "experiments/prompt_compare.html", context)


def _output_choices(experiment, item_id) -> list[tuple[str, str]]:
    """Every output of one prompt in the experiment, as (ref, label) for the diff's selects."""
    _item, runs = selectors.experiment_prompt_runs(experiment, item_id=item_id)
    labels = {c.config_hash: c.label for c in experiment.configs.all()}
    choices = []
    for run in sorted(runs, key=lambda r: (r.position, r.sample)):
        for out in run.outputs.all():
            suffix = f" · output {out.index + 1}" if len(run.outputs.all()) > 1 else ""
            label = f"{labels.get(run.config_hash, run.label)} · sample {run.sample}{suffix}"
            choices.append((f"{run.id}:{out.index}", label))
    return choices


@researcher_required
@require_GET
def experiment_diff(request: HttpRequest, experiment_id) -> HttpResponse:
    experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
    outputs = {}
    for side in ("a", "b"):
        run_id, _, index = request.GET.get(side, "").partition(":")
        if not run_id or not index.isdigit():
            raise Http404("Choose two outputs.")
        out = selectors.output_get(user=request.user, run_id=run_id, index=int(index))
        link = getattr(out.run.comparison, "experiment_link", None)
        if link is None or link.experiment_id != experiment.id:
            raise Http404("That output is not in this experiment.")
        outputs[side] = (out, link)
    (a, link_a), (b, _link_b) = outputs["a"], outputs["b"]
    diff = tokenviews.token_diff(
        a.token_ids,
        tokenviews.token_texts(a.token_ids, a.trace),
        b.token_ids,
        tokenviews.token_texts(b.token_ids, b.trace),
    )
    labels = {c.config_hash: c.label for c in experiment.configs.all()}
    context = {
        "experiment": experiment,
        "item": link_a.item,
        "a": a,
        "b": b,
        "a_label": f"{labels.get(a.run.config_hash, a.run.label)} · sample {a.run.sample}",
        "b_label": f"{labels.get(b.run.config_hash, b.run.label)} · sample {b.run.sample}",
        "diff": diff,
        "choices": _output_choices(experiment, link_a.item_id),
        "a_ref": request.GET["a"],
        "b_ref": request.GET["b"],
    }
    return render(request, "experiments/diff.html", context)
