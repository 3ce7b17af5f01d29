"""manage.py ratings_demo: a ready-to-rate session without a worker."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from decodelab.ratings import analysis
from decodelab.ratings.models import RatingSession, Vote
from decodelab.runs.models import Run

pytestmark = pytest.mark.django_db


def test_demo_creates_finished_comparisons_annotators_and_a_session(researcher):
    out = io.StringIO()
    call_command("ratings_demo", owner="ada", annotators="rater1", prompts=4, simulated=2, stdout=out)
    text = out.getvalue()
    assert "annotator rater1: password" in text
    session = RatingSession.objects.get()
    assert session.items.count() == 12 and session.overlap == 3
    assert Run.objects.filter(status="succeeded").count() == 12
    assert len({r.config_hash for r in Run.objects.all()}) == 3
    assert Vote.objects.count() == 24  # two simulated annotators, every item
    assert f"/rate/t/{session.public_id}/" in text
    report = analysis.session_report(session=session)
    scores = report["bradley_terry"]["result"]["scores"]
    assert len(scores) == 3 and all(s["ci_lower"] < s["ci_upper"] for s in scores)
    assert all(c["cost_ms_per_token"] > 0 for c in report["configs"])


def test_demo_needs_a_researcher(annotator):
    with pytest.raises(CommandError, match="no researcher"):
        call_command("ratings_demo", owner="ann", stdout=io.StringIO())


@pytest.mark.parametrize("mode", ["likert", "ranking"])
def test_demo_in_other_modes(researcher, mode):
    call_command("ratings_demo", owner="ada", mode=mode, prompts=2, simulated=1, stdout=io.StringIO())
    assert Vote.objects.count() == RatingSession.objects.get().items.count()
