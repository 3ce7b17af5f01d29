import datetime as dt

import pytest
from django.utils import timezone

from decodelab.catalog.models import LanguageModel
from decodelab.common.errors import ApplicationError, QuotaExceeded
from decodelab.experiments import selectors, services
from decodelab.experiments.models import Experiment, ExperimentConfig, Preset, Sweep
from decodelab.runs import reaper
from decodelab.runs.models import Comparison, Run, RunStatus
from tests.experiments.support import finish, preset, prompt_set

QUEUE = "decode.smollm2-135m"


@pytest.mark.django_db
def test_a_presets_hash_is_the_config_hash_of_every_run_made_from_it(researcher):
    user = researcher.user
    greedy = preset(user, "greedy", max_new_tokens=8, chat=False)
    sampling = preset(user, "sampling", params={"temperature": 0.7}, max_new_tokens=12, stop=["\n"])
    fixed = preset(user, "sampling", params={"top_p": 0.9}, seed_policy="fixed", seed=7)
    experiment = services.experiment_create(
        owner=user, name="e", prompt_set=prompt_set(user), presets=[greedy, sampling, fixed], samples=2
    )
    by_label = {p.name: p.config_hash for p in (greedy, sampling, fixed)}
    runs = list(selectors.experiment_runs(experiment))
    assert len(runs) == 2 * 3 * 2
    assert {run.config_hash for run in runs} == set(by_label.values())
    assert all(run.config_hash == by_label[run.label] for run in runs)
    assert [c.config_hash for c in experiment.configs.order_by("position")] == list(by_label.values())


@pytest.mark.django_db
def test_the_hash_covers_everything_that_changes_the_output_and_nothing_else(researcher):
    user = researcher.user
    base = preset(user, "sampling", params={"temperature": 0.7})
    same = [
        preset(user, "sampling", params={"temperature": 0.7}, name="another name", seed=99),
        preset(user, "sampling", params={"temperature": 0.7, "top_k": 50, "top_p": 1.0}),  # explicit defaults
    ]
    assert {p.config_hash for p in same} == {base.config_hash}
    different = [
        preset(user, "sampling", params={"temperature": 0.8}),
        preset(user, "sampling", params={"temperature": 0.7}, max_new_tokens=9),
        preset(user, "sampling", params={"temperature": 0.7}, chat=False),
        preset(user, "sampling", params={"temperature": 0.7}, stop=["."]),
        preset(user, "sampling", params={"temperature": 0.7}, seed_policy="fixed"),
        preset(user, "greedy"),
        preset(user, "constrained", params={"regex": "[a-z]+"}),
        preset(user, "constrained", params={"regex": "[a-z]*"}),  # the grammar is part of the params
    ]
    hashes = [p.config_hash for p in different]
    assert base.config_hash not in hashes and len(set(hashes)) == len(hashes)
    # The model's revision (dtype, library versions reported by its worker) is part of it too.
    LanguageModel.objects.create(
        name="smollm2-135m",
        display_name="SmolLM2",
        tokenizer_family="smollm2",
        installed=True,
        dtype="bfloat16",
        library_versions={"torch": "2.13.0", "transformers": "5.1.0"},
    )
    assert preset(user, "sampling", params={"temperature": 0.7}).config_hash != base.config_hash


@pytest.mark.django_db
def test_an_experiment_rehashes_presets_made_before_the_model_revision_changed(researcher):
    user = researcher.user
    old = preset(user, "greedy")
    LanguageModel.objects.create(name="smollm2-135m", display_name="S", tokenizer_family="s", dtype="float16")
    experiment = services.experiment_create(owner=user, name="e", prompt_set=prompt_set(user), presets=[old])
    old.refresh_from_db()
    run_hashes = set(selectors.experiment_runs(experiment).values_list("config_hash", flat=True))
    assert run_hashes == {old.config_hash} == {experiment.configs.get().config_hash}
    assert old.identity["model_revision"]["dtype"] == "float16"


@pytest.mark.django_db
def test_presets_are_grouped_into_one_comparison_per_prompt_model_length_and_seed_policy(researcher):
    user = researcher.user
    presets = [
        preset(user, "greedy", max_new_tokens=8),
        preset(user, "sampling", max_new_tokens=8),
        preset(user, "sampling", params={"temperature": 0.5}, max_new_tokens=16),
        preset(user, "sampling", params={"temperature": 0.9}, seed_policy="fixed", seed=42),
    ]
    experiment = services.experiment_create(
        owner=user, name="e", prompt_set=prompt_set(user), presets=presets, samples=2, seeds=[11, 12]
    )
    assert experiment.comparisons.count() == 2 * 3  # two prompts x three groups
    comparisons = Comparison.objects.filter(experiment_link__experiment=experiment)
    assert sorted(c.max_new_tokens for c in comparisons) == [8, 8, 8, 8, 16, 16]
    per_sample = Run.objects.filter(comparison__in=comparisons, label=presets[1].name)
    assert sorted((r.sample, r.seed) for r in per_sample) == [(0, 11), (0, 11), (1, 12), (1, 12)]
    fixed = Run.objects.filter(comparison__in=comparisons, label=presets[3].name)
    assert sorted((r.sample, r.seed) for r in fixed) == [(0, 42), (0, 42), (1, 42), (1, 42)]


@pytest.mark.django_db
def test_runs_wait_undispatched_for_the_reaper_which_sends_them_again_after_a_restart(researcher, broker):
    user = researcher.user
    experiment = services.experiment_create(
        owner=user, name="e", prompt_set=prompt_set(user), presets=[preset(user)], samples=2
    )
    runs = selectors.experiment_runs(experiment)
    assert broker.llen(QUEUE) == 0 and all(r.dispatched_at is None for r in runs)
    later = timezone.now() + dt.timedelta(seconds=10)
    assert reaper.reap(now=later).dispatched == 4
    assert broker.llen(QUEUE) == 4 and all(r.dispatches == 1 for r in runs.all())
    # A restart that lost the broker's queue: the reaper finds the runs missing and sends them again.
    broker.flushall()
    sweep = reaper.reap(now=later + dt.timedelta(minutes=5))
    assert sweep.redispatched_lost == 4 and broker.llen(QUEUE) == 4


@pytest.mark.django_db
def test_the_runs_in_flight_quota_refuses_the_whole_experiment(researcher, settings):
    settings.DECODELAB_MAX_RUNS_IN_FLIGHT = 5
    user = researcher.user
    ps, p = prompt_set(user, prompts=["a", "b", "c"]), preset(user)
    with pytest.raises(QuotaExceeded) as caught:
        services.experiment_create(owner=user, name="e", prompt_set=ps, presets=[p], samples=2)
    assert caught.value.status_code == 429 and "DECODELAB_MAX_RUNS_IN_FLIGHT" in caught.value.message
    assert Experiment.objects.count() == Comparison.objects.count() == Run.objects.count() == 0


@pytest.mark.django_db
def test_duplicate_prompts_are_skipped_unless_asked_for(researcher):
    user = researcher.user
    ps = prompt_set(user, prompts=["same", "other", "same"])
    skip = services.experiment_create(owner=user, name="a", prompt_set=ps, presets=[preset(user)])
    keep = services.experiment_create(
        owner=user, name="b", prompt_set=ps, presets=[preset(user, "sampling")], skip_duplicates=False
    )
    assert skip.comparisons.count() == 2 and keep.comparisons.count() == 3


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"samples": 0}, "samples"),
        ({"samples": 17}, "samples"),
        ({"samples": 2, "seeds": [1]}, "seeds"),
        ({"samples": 2, "seeds": [1, 1]}, "seeds"),
        ({"samples": 1, "seeds": [-1]}, "seeds[0]"),
        ({"name": ""}, "name"),
        ({"presets": []}, "presets"),
        ({"duplicate": True}, "presets[1]"),
    ],
)
def test_bad_experiments_are_refused_naming_the_field_and_store_nothing(researcher, kwargs, field):
    user = researcher.user
    greedy = preset(user)
    presets = [greedy, preset(user, name="greedy again")] if kwargs.pop("duplicate", False) else [greedy]
    arguments = {"owner": user, "name": "e", "prompt_set": prompt_set(user), "presets": presets, **kwargs}
    with pytest.raises(ApplicationError) as caught:
        services.experiment_create(**arguments)
    assert caught.value.field == field
    assert Experiment.objects.count() == ExperimentConfig.objects.count() == Run.objects.count() == 0


@pytest.mark.django_db
def test_progress_counts_statuses_and_estimates_the_time_left(researcher):
    user = researcher.user
    experiment = services.experiment_create(
        owner=user, name="e", prompt_set=prompt_set(user), presets=[preset(user), preset(user, "sampling")]
    )
    runs = list(selectors.experiment_runs(experiment).order_by("created_at", "position"))
    assert selectors.experiment_progress(experiment)["status"] == "queued"
    finish(runs[0], duration_s=2.0)
    finish(runs[1], duration_s=4.0)
    finish(runs[2], error="params: boom")
    progress = selectors.experiment_progress(experiment)
    assert progress["status"] == "running"
    assert (progress["total"], progress["finished"], progress["succeeded"], progress["failed"]) == (4, 3, 2, 1)
    assert progress["percent"] == 75.0 and progress["queued"] == 1 and progress["workers"] == 1
    # 3 runs finished in the 4 s since the first started: 0.75 runs/s, 1 run left.
    assert progress["eta_s"] == pytest.approx(4 / 3, abs=0.3)
    finish(runs[3])
    done = selectors.experiment_progress(experiment)
    assert done["status"] == "finished" and done["percent"] == 100.0 and done["eta_s"] == 0.0 and done["done"]


@pytest.mark.django_db
def test_the_eta_counts_a_batch_finishing_together_as_progress(researcher):
    user = researcher.user
    experiment = services.experiment_create(
        owner=user, name="e", prompt_set=prompt_set(user), presets=[preset(user)], samples=8
    )
    runs = list(selectors.experiment_runs(experiment).order_by("created_at", "position"))
    assert len(runs) == 16
    for run in runs[:8]:  # one batch of 8 runs, decoded together in 10 s
        finish(run, duration_s=10.0)
    progress = selectors.experiment_progress(experiment)
    # 8 runs per 10 s: the other 8 take about 10 s more (a mean-duration estimate said 80 s).
    assert progress["eta_s"] == pytest.approx(10.0, rel=0.1)


@pytest.mark.django_db
def test_cancelling_an_experiment_cancels_only_unfinished_runs(researcher):
    user = researcher.user
    experiment = services.experiment_create(owner=user, name="e", prompt_set=prompt_set(user), presets=[preset(user)])
    first, second = selectors.experiment_runs(experiment).order_by("created_at")
    finish(first)
    assert services.experiment_cancel(experiment=experiment) == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (RunStatus.SUCCEEDED, RunStatus.CANCELLED)
    progress = selectors.experiment_progress(experiment)
    assert progress["status"] == "cancelled" and progress["done"] and progress["eta_s"] is None


@pytest.mark.django_db
def test_editing_a_preset_rehashes_it_but_experiments_keep_what_they_ran(researcher):
    user = researcher.user
    p = preset(user, "sampling", params={"temperature": 0.7})
    before = p.config_hash
    experiment = services.experiment_create(owner=user, name="e", prompt_set=prompt_set(user), presets=[p])
    services.preset_update(preset=p, params={"temperature": 0.3})
    assert p.config_hash != before and p.params["temperature"] == 0.3
    config = experiment.configs.get()
    assert config.config_hash == before and config.params["temperature"] == 0.7
    assert {r.params["temperature"] for r in selectors.experiment_runs(experiment)} == {0.7}
    clone = services.preset_clone(preset=p)
    assert clone.cloned_from == p and clone.config_hash == p.config_hash and clone.name.endswith("(copy)")
    services.preset_update(preset=clone, strategy="greedy")  # another strategy's params are dropped
    assert clone.params == {} and clone.config_hash != p.config_hash
    with pytest.raises(ApplicationError) as caught:
        services.preset_update(preset=p, params={"temperature": 0})
    assert caught.value.field == "params.temperature"


@pytest.mark.django_db
def test_a_sweep_makes_one_validated_preset_per_combination(researcher):
    user = researcher.user
    sweep = services.sweep_create(
        owner=user,
        base={"strategy": "sampling", "max_new_tokens": 8},
        x={"param": "temperature", "values": [0.7, 1.0]},
        y={"param": "top_p", "values": [0.9, 1.0]},
    )
    points = sorted((p.params["temperature"], p.params["top_p"]) for p in sweep.presets.all())
    assert points == [(0.7, 0.9), (0.7, 1.0), (1.0, 0.9), (1.0, 1.0)]
    for p in sweep.presets.all():
        assert p.sweep_point == {"temperature": p.params["temperature"], "top_p": p.params["top_p"]}
    assert len({p.config_hash for p in sweep.presets.all()}) == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("x", "y", "field", "fragment"),
    [
        ({"param": "temperature", "values": [0.7, 0]}, None, "x.values[1]", "temperature=0"),
        ({"param": "temperature", "values": [0.7]}, {"param": "top_k", "values": [5, -1]}, "y.values[1]", "top_k"),
        ({"param": "nope", "values": [1]}, None, "x.param", "not a numeric"),
        ({"param": "temperature", "values": [0.5, 0.5]}, None, "x.values[1]", "twice"),
        ({"param": "temperature", "values": []}, None, "x.values", "1 to 10"),
        (
            {"param": "temperature", "values": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]},
            {"param": "top_p", "values": [0.5, 0.6, 0.7, 0.8, 0.9]},
            "y.values",
            "at most 25",
        ),
        ({"param": "top_p", "values": [0.5]}, {"param": "top_p", "values": [0.6]}, "y.param", "different"),
    ],
)
def test_bad_sweeps_name_the_axis_and_store_nothing(researcher, x, y, field, fragment):
    with pytest.raises(ApplicationError) as caught:
        services.sweep_create(owner=researcher.user, base={"strategy": "sampling"}, x=x, y=y)
    assert caught.value.field == field and fragment in caught.value.message
    assert Sweep.objects.count() == Preset.objects.count() == 0


@pytest.mark.django_db
def test_a_prompt_set_in_use_cannot_be_deleted(researcher):
    user = researcher.user
    ps = prompt_set(user)
    services.experiment_create(owner=user, name="e", prompt_set=ps, presets=[preset(user)])
    with pytest.raises(ApplicationError) as caught:
        services.prompt_set_delete(prompt_set=ps)
    assert caught.value.field == "prompt_set"
    unused = prompt_set(user, name="unused")
    services.prompt_set_delete(prompt_set=unused)
    assert not type(unused).objects.filter(id=unused.id).exists()


@pytest.mark.django_db
def test_deleting_a_researcher_removes_their_workbench_with_them(researcher):
    user = researcher.user
    ps = prompt_set(user)
    services.experiment_create(owner=user, name="e", prompt_set=ps, presets=[preset(user)])
    user.delete()
    assert Experiment.objects.count() == Preset.objects.count() == Run.objects.count() == 0
    assert type(ps).objects.count() == 0
