"""Prompt set pages: the list with an upload form and a type-in form, one set's prompts, delete."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from decodelab.common.decorators import researcher_required
from decodelab.common.errors import ApplicationError
from decodelab.experiments import selectors, services
from decodelab.experiments.promptfiles import MAX_PROMPTS_PER_SET, MAX_UPLOAD_BYTES


def _list_page(request: HttpRequest, *, errors: dict | None = None, form: dict | None = None, status: int = 200):
    context = {
        "prompt_sets": selectors.prompt_set_list(user=request.user)[:200],
        "errors": errors or {},
        "form": form or {},
        "max_prompts": MAX_PROMPTS_PER_SET,
        "max_mb": MAX_UPLOAD_BYTES // 1024 // 1024,
    }
    return render(request, "experiments/prompt_sets.html", context, status=status)


@researcher_required
@require_GET
def prompt_set_list(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@researcher_required
@require_POST
def prompt_set_upload(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    form = {"upload_name": request.POST.get("name", "")}
    try:
        if upload is None:
            raise ApplicationError("choose a JSONL or CSV file", field="file")
        prompt_set = services.prompt_set_upload(
            owner=request.user,
            name=form["upload_name"],
            data=upload.read(MAX_UPLOAD_BYTES + 1),
            filename=upload.name,
            size=upload.size,
        )
    except ApplicationError as exc:
        messages = exc.extra.get("errors", {}).get(exc.field) or [exc.message]
        return _list_page(request, errors={"upload": messages}, form=form, status=exc.status_code)
    return redirect("experiments:prompt_set_detail", prompt_set_id=prompt_set.id)


@researcher_required
@require_POST
def prompt_set_new(request: HttpRequest) -> HttpResponse:
    form = {"name": request.POST.get("name", ""), "prompts": request.POST.get("prompts", "")}
    lines = [line for line in form["prompts"].splitlines() if line.strip()]
    try:
        prompt_set = services.prompt_set_create(owner=request.user, name=form["name"], prompts=lines)
    except ApplicationError as exc:
        messages = exc.extra.get("errors", {}).get(exc.field) or [f"{exc.field}: {exc.message}"]
        return _list_page(request, errors={"manual": messages}, form=form, status=exc.status_code)
    return redirect("experiments:prompt_set_detail", prompt_set_id=prompt_set.id)


@researcher_required
@require_GET
def prompt_set_detail(request: HttpRequest, prompt_set_id) -> HttpResponse:
    prompt_set = selectors.prompt_set_get(user=request.user, prompt_set_id=prompt_set_id)
    experiments = selectors.experiment_list(user=request.user, prompt_set=str(prompt_set.id))
    return render(request, "experiments/prompt_set_detail.html", {"prompt_set": prompt_set, "experiments": experiments})


@researcher_required
@require_POST
def prompt_set_delete(request: HttpRequest, prompt_set_id) -> HttpResponse:
    prompt_set = selectors.prompt_set_get(user=request.user, prompt_set_id=prompt_set_id)
    try:
        services.prompt_set_delete(prompt_set=prompt_set)
    except ApplicationError as exc:
        experiments = selectors.experiment_list(user=request.user, prompt_set=str(prompt_set.id))
        context = {"prompt_set": prompt_set, "experiments": experiments, "error": exc.message}
        return render(request, "experiments/prompt_set_detail.html", context, status=exc.status_code)
    return redirect("experiments:prompt_set_list")
