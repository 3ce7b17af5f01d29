"""Researcher pages: session list, new-session form, session progress, rankings. Annotators get 403
here (researcher_required), another researcher's session is 404."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from decodelab.common import jsonlimits
from decodelab.common.decorators import researcher_required
from decodelab.common.errors import ApplicationError
from decodelab.ratings import analysis, presenters, selectors, services
from decodelab.ratings.models import Mode, SessionStatus
from decodelab.ratings.sources import experiment_choices, experiment_comparison_ids
from decodelab.runs import selectors as runs_selectors

FORM_COMPARISONS = 200


@researcher_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    sessions = list(selectors.session_list(user=request.user)[:200])
    return render(request, "ratings/session_list.html", {"sessions": sessions})


def _int(raw: str | None, field: str, default: int) -> int:
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApplicationError("must be a whole number", field=field) from None


def _gold_lines(raw: str) -> list[dict[str, Any]]:
    """Gold items from the form: one JSON object per line."""
    gold = []
    for n, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            gold.append(jsonlimits.loads(line))
        except jsonlimits.TooDeep as exc:
            raise ApplicationError(f"line {n}: {exc.message}", field="gold") from None
        except json.JSONDecodeError as exc:
            raise ApplicationError(f"line {n} is not valid JSON: {exc.msg}", field="gold") from None
    return gold


def _form_context(request: HttpRequest, form: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    comparisons = []
    for c in runs_selectors.comparison_list(user=request.user)[:FORM_COMPARISONS]:
        runs = list(c.runs.all())
        comparisons.append(
            {
                "id": str(c.id),
                "prompt": c.prompt,
                "model": c.model,
                "labels": [r.label for r in runs],
                "finished": all(r.is_finished for r in runs),
            }
        )
    return {
        "form": form,
        "errors": errors,
        "modes": Mode.choices,
        "annotators": selectors.annotator_choices(),
        "comparisons": comparisons,
        "experiments": experiment_choices(user=request.user),
    }


@researcher_required
@require_http_methods(["GET", "POST"])
def session_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        form = {
            "name": "",
            "mode": Mode.PAIRWISE,
            "criteria": ", ".join(services.DEFAULT_CRITERIA),
            "ranking_k": 3,
            "overlap": 1,
            "instructions": "Read the request, then choose the better answer.",
            "annotators": [],
            "comparisons": request.GET.getlist("comparison"),
            "experiment": request.GET.get("experiment", ""),
            "active": False,
            "reveal_after_vote": False,
            "gold": "",
        }
        return render(request, "ratings/session_new.html", _form_context(request, form, {}))

    post = request.POST
    form = {
        "name": post.get("name", ""),
        "mode": post.get("mode", ""),
        "criteria": post.get("criteria", ""),
        "ranking_k": post.get("ranking_k", "3"),
        "overlap": post.get("overlap", "1"),
        "instructions": post.get("instructions", ""),
        "annotators": post.getlist("annotators"),
        "comparisons": post.getlist("comparisons"),
        "experiment": post.get("experiment", ""),
        "active": post.get("active") == "on",
        "reveal_after_vote": post.get("reveal_after_vote") == "on",
        "gold": post.get("gold", ""),
    }
    try:
        if not form["name"].strip():
            raise ApplicationError("give the session a name", field="name")
        comparison_ids = list(form["comparisons"])
        if form["experiment"]:
            comparison_ids += experiment_comparison_ids(user=request.user, experiment_id=form["experiment"])
        session = services.session_create(
            owner=request.user,
            name=form["name"],
            mode=form["mode"],
            comparison_ids=comparison_ids,
            annotators=form["annotators"],
            overlap=_int(form["overlap"], "overlap", 1),
            criteria=form["criteria"].split(","),
            ranking_k=_int(form["ranking_k"], "ranking_k", 3),
            instructions=form["instructions"],
            active=form["active"],
            reveal_after_vote=form["reveal_after_vote"],
            gold=_gold_lines(form["gold"]),
            experiment_id=form["experiment"] or None,
        )
    except ApplicationError as exc:
        errors = {exc.field or "form": exc.message}
        return render(request, "ratings/session_new.html", _form_context(request, form, errors), status=exc.status_code)
    return redirect("ratings:session_detail", session_id=session.id)


@researcher_required
@require_GET
def session_detail(request: HttpRequest, session_id) -> HttpResponse:
    session = selectors.session_get(user=request.user, session_id=session_id)
    services.session_items_sync(session=session)
    context = {
        "session": session,
        "summary": selectors.session_summary(session=session),
        "progress": selectors.session_progress(session=session),
        "task_url": request.build_absolute_uri(reverse("ratings:task", args=[session.public_id])),
        "statuses": SessionStatus,
    }
    return render(request, "ratings/session_detail.html", context)


@researcher_required
@require_POST
def session_status(request: HttpRequest, session_id) -> HttpResponse:
    session = selectors.session_get(user=request.user, session_id=session_id)
    # Only the page's own buttons post here; an odd value leaves the status as it was.
    with contextlib.suppress(ApplicationError):
        services.session_set_status(session=session, status=request.POST.get("status", ""))
    return redirect("ratings:session_detail", session_id=session.id)


@researcher_required
@require_GET
def session_rankings(request: HttpRequest, session_id) -> HttpResponse:
    session = selectors.session_get(user=request.user, session_id=session_id)
    report = analysis.session_report(session=session)
    labels = {c["config"]: c["label"] for c in report["configs"]}
    labels.update({analysis.GOLD_A: "gold output 0", analysis.GOLD_B: "gold output 1"})
    bt = (report.get("bradley_terry") or {}).get("result")
    lc = (report.get("length_controlled") or {}).get("result")
    matrix = (report.get("matrix") or {}).get("result")
    likert = (report.get("likert") or {}).get("result")
    elo = (report.get("elo") or {}).get("result") or {}
    context = {
        "session": session,
        "report": report,
        "labels": labels,
        "bt_rows": presenters.ci_bars(bt["scores"], labels) if bt else [],
        "lc_rows": presenters.ci_bars(lc["scores"], labels) if lc else [],
        "elo_rows": sorted(
            ({"label": labels.get(k, k), "config": k, "rating": v} for k, v in elo.items()), key=lambda r: -r["rating"]
        ),
        "matrix": presenters.matrix_rows(matrix, labels) if matrix else None,
        "likert_tables": presenters.likert_tables(likert, labels) if likert else [],
        "chart": presenters.quality_cost_chart(report["quality_cost"]["points"], labels),
        "cost_label": {c["config"]: c["cost_ms_per_token"] for c in report["configs"]},
    }
    return render(request, "ratings/session_rankings.html", context)
