"""Creating sessions: items from finished comparisons, overlap, gold items, validation."""

from __future__ import annotations

import pytest

from decodelab.common.errors import ApplicationError
from decodelab.ratings import services, serving
from decodelab.ratings.models import Assignment, Item, Mode
from decodelab.runs.models import Run, RunStatus
from decodelab.users.models import Role
from decodelab.users.services import user_create
from tests.ratings.builders import CONFIGS, finished_comparison, finished_comparisons
from tests.ratings.helpers import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotators(db):
    return [user_create(username=name, role=Role.ANNOTATOR).user for name in ("ann1", "ann2", "ann3")]


def _create(researcher, comparisons, annotators, **kwargs):
    defaults = {"name": "pilot", "mode": Mode.PAIRWISE, "overlap": 1}
    return services.session_create(
        owner=researcher.user,
        comparison_ids=[c.id for c in comparisons],
        annotators=[a.username for a in annotators],
        **{**defaults, **kwargs},
    )


def test_pairwise_session_makes_every_pair_of_configurations_within_each_prompt(researcher, annotators):
    comparisons = finished_comparisons(researcher.user, 4)
    session = _create(researcher, comparisons, annotators, overlap=2)
    items = list(session.items.prefetch_related("candidates"))
    assert len(items) == 4 * 3  # 3 configurations -> 3 pairs per prompt
    for item in items:
        candidates = list(item.candidates.all())
        assert len(candidates) == 2
        assert candidates[0].config_hash != candidates[1].config_hash
        assert all(c.output.run.comparison_id == item.comparison_id for c in candidates)
    # overlap 2: every item is in exactly two queues, spread evenly over three annotators
    assert all(item.assignments.count() == 2 for item in items)
    loads = [Assignment.objects.filter(annotator=a, item__session=session).count() for a in annotators]
    assert max(loads) - min(loads) <= 1


def test_items_appear_only_when_all_runs_of_the_prompt_have_finished(researcher, annotators):
    done = finished_comparison(researcher.user, 0)
    running = finished_comparison(researcher.user, 1)
    Run.objects.filter(comparison=running, position=2).update(status=RunStatus.RUNNING)
    session = _create(researcher, [done, running], annotators)
    assert session.items.count() == 3
    assert not session.items.filter(comparison=running).exists()
    Run.objects.filter(comparison=running, position=2).update(status=RunStatus.SUCCEEDED)
    assert services.session_items_sync(session=session) == 3
    assert session.items.filter(comparison=running).count() == 3
    assert services.session_items_sync(session=session) == 0  # idempotent


def test_failed_runs_are_left_out_of_the_items(researcher, annotators):
    comparison = finished_comparison(researcher.user, 0)
    Run.objects.filter(comparison=comparison, position=0).update(status=RunStatus.FAILED)
    session = _create(researcher, [comparison], annotators)
    hashes = {c.config_hash for item in session.items.all() for c in item.candidates.all()}
    assert hashes == {CONFIGS[1]["hash"], CONFIGS[2]["hash"]}


def test_likert_items_are_single_outputs_and_ranking_items_hold_k_outputs(researcher, annotators):
    comparisons = finished_comparisons(researcher.user, 2)
    likert = _create(researcher, comparisons, annotators, mode=Mode.LIKERT, criteria=["fluency", "overall"])
    assert likert.criteria == ["fluency", "overall"]
    assert likert.items.count() == 6
    assert all(item.candidates.count() == 1 for item in likert.items.all())
    ranking = _create(researcher, comparisons, annotators, mode=Mode.RANKING, ranking_k=3)
    assert ranking.items.count() == 2
    assert all(item.candidates.count() == 3 for item in ranking.items.all())


def test_gold_items_go_to_every_annotator(researcher, annotators):
    gold = [{"prompt": "2 + 2 =", "outputs": ["4", "5"], "expected": 0}]
    session = _create(researcher, finished_comparisons(researcher.user, 1), annotators, gold=gold)
    item = session.items.get(gold=True)
    assert item.expected == 0
    assert [c.text for c in item.candidates.order_by("position")] == ["4", "5"]
    assert item.assignments.count() == len(annotators)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mode": "stars"}, "mode"),
        ({"overlap": 4}, "overlap"),
        ({"mode": Mode.LIKERT, "active": True}, "active"),
        ({"gold": [{"prompt": "x", "outputs": ["a"], "expected": 0}]}, "gold[0].outputs"),
        ({"gold": [{"prompt": "x", "outputs": ["a", "b"], "expected": 2}]}, "gold[0].expected"),
    ],
)
def test_invalid_sessions_are_refused_with_the_field_named(researcher, annotators, kwargs, field):
    with pytest.raises(ApplicationError) as exc:
        _create(researcher, finished_comparisons(researcher.user, 1), annotators, **kwargs)
    assert exc.value.field == field


def test_only_own_comparisons_and_annotator_accounts_can_be_used(researcher, other_researcher, annotators):
    foreign = finished_comparison(other_researcher.user, 0)
    with pytest.raises(ApplicationError) as exc:
        _create(researcher, [foreign], annotators)
    assert exc.value.field == "comparisons"
    with pytest.raises(ApplicationError) as exc:
        _create(researcher, finished_comparisons(researcher.user, 1), [other_researcher.user])
    assert exc.value.field == "annotators"


def test_skipped_items_are_handed_to_another_annotator(researcher, annotators):
    session = _create(researcher, [finished_comparison(researcher.user, 0)], annotators, overlap=1)
    first = serving.next_assignment(session=session, user=annotators[0])
    assert first is not None
    services.assignment_skip(assignment=first)
    item = first.item
    assert item.assignments.exclude(status="skipped").count() == 1
    assert item.assignments.exclude(annotator=annotators[0]).exists()


def test_the_same_prompt_in_two_comparisons_pools_its_configurations(researcher, annotators):
    """An experiment splits one prompt by model: its configurations are still compared with each other."""
    a = finished_comparison(researcher.user, 0, configs=CONFIGS[:2])
    b = finished_comparison(researcher.user, 0, configs=[{**CONFIGS[2], "label": "other model"}])
    session = _create(researcher, [a, b], annotators)
    assert session.items.count() == 3
    assert Item.objects.filter(session=session).values("prompt").distinct().count() == 1


def test_a_session_from_an_experiment_rates_its_comparisons(api, researcher, annotators, other_researcher):
    """The experiment's comparisons are read through the experiments app's selectors."""
    from decodelab.experiments.models import Experiment, ExperimentComparison, PromptItem, PromptSet

    comparisons = finished_comparisons(researcher.user, 2)
    prompt_set = PromptSet.objects.create(owner=researcher.user, name="set")
    experiment = Experiment.objects.create(owner=researcher.user, name="grid", prompt_set=prompt_set)
    for n, comparison in enumerate(comparisons):
        item = PromptItem.objects.create(
            prompt_set=prompt_set, position=n, external_id=str(n), prompt=comparison.prompt
        )
        ExperimentComparison.objects.create(experiment=experiment, item=item, comparison=comparison)
    body = {"name": "from grid", "mode": "pairwise", "experiment": str(experiment.id), "annotators": ["ann1"]}
    response = api.post("/api/v1/rating-sessions/", body, format="json")
    assert response.status_code == 201, response.content
    assert sorted(response.json()["comparisons"]) == sorted(str(c.id) for c in comparisons)
    assert response.json()["experiment_id"] == str(experiment.id)
    assert response.json()["summary"]["items"] == 6

    foreign = client_for(other_researcher).post("/api/v1/rating-sessions/", body, format="json")
    assert foreign.status_code == 400 and "experiment" in foreign.json()["errors"]
