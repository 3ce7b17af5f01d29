import base64
import datetime as dt
import json

import pytest
from django.utils import timezone

from decodelab.common.errors import ApplicationError
from decodelab.runs import services
from decodelab.runs.models import Comparison, Output, Run, RunStatus
from tests.conftest import point_celery_at

QUEUE = "decode.smollm2-135m"
PRESETS = [{"strategy": "greedy"}, {"strategy": "beam", "params": {"num_beams": 3, "num_return_sequences": 2}}]


def queued_messages(broker):
    return [json.loads(m) for m in broker.lrange(QUEUE, 0, -1)]


@pytest.mark.django_db
def test_comparison_create_stores_runs_and_dispatches_each_to_the_model_queue_after_commit(
    researcher, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(
            owner=researcher.user,
            prompt="The capital of France is",
            presets=PRESETS,
            max_new_tokens=12,
            chat=False,
            stop=["\n\n"],
        )
    runs = list(comparison.runs.order_by("position"))
    assert [r.strategy for r in runs] == ["greedy", "beam"]
    assert runs[1].params == {"num_beams": 3, "num_return_sequences": 2, "length_penalty": 1.0, "early_stopping": False}
    assert runs[1].label == "beam (num_beams=3, num_return_sequences=2)"
    assert all(r.dispatches == 1 and r.attempts == 0 and r.dispatched_at is not None for r in runs)
    assert broker.get(f"decodelab:lease:{runs[0].id}").decode() == runs[0].task_id

    messages = queued_messages(broker)
    assert len(messages) == 2
    tasks = {m["headers"]["task"] for m in messages}
    assert tasks == {"workers.decode"}
    ids = {m["headers"]["id"] for m in messages}
    assert ids == {f"{r.id}:1" for r in runs}
    [request], _kwargs, _embed = json.loads(base64.b64decode(messages[0]["body"]))
    assert request["stop"] == ["\n\n"] and request["max_new_tokens"] == 12 and request["model"] == "smollm2-135m"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": "   "}, "prompt", "must not be empty"),
        ({"prompt": "x" * 8001}, "prompt", "at most 8000"),
        ({"max_new_tokens": 0}, "max_new_tokens", "between 1 and 1024"),
        ({"max_new_tokens": 1025}, "max_new_tokens", "between 1 and 1024"),
        ({"presets": [{"strategy": "nucleus"}]}, "presets[0].strategy", "unknown strategy"),
        (
            {"presets": [{"strategy": "greedy"}, {"strategy": "beam", "params": {"num_beams": 9}}]},
            "presets[1].params.num_beams",
            "between 1 and 8",
        ),
        (
            {"presets": [{"strategy": "sampling", "params": {"temprature": 0.5}}]},
            "presets[0].params.temprature",
            "unknown parameter",
        ),
        (
            {"presets": [{"strategy": "beam", "params": {"num_beams": 2, "num_return_sequences": 3}}]},
            "presets[0].params.num_return_sequences",
            "between 1 and 2",
        ),
        ({"presets": []}, "presets", "at least one"),
        ({"model": "gpt-5"}, "model", "unknown model"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4"),
        ({"stop": ["x" * 65]}, "stop", "1 to 64 characters"),
    ],
)
def test_invalid_input_names_the_field_and_stores_and_dispatches_nothing(
    researcher, broker, django_capture_on_commit_callbacks, kwargs, field, fragment
):
    args = {"owner": researcher.user, "prompt": "Hello", "presets": PRESETS, "max_new_tokens": 8, **kwargs}
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ApplicationError) as err:
        services.comparison_create(**args)
    assert err.value.field == field
    assert fragment in err.value.message
    assert Comparison.objects.count() == 0 and Run.objects.count() == 0
    assert broker.llen(QUEUE) == 0


def _result(run, *, text="Paris.", error=None):
    base = {"run_id": str(run.id), "attempt": 1}
    if error:
        return {**base, "error": error, "error_field": "params.num_beams"}
    return {
        **base,
        "outputs": [{"index": 0, "text": text, "token_ids": [1, 2], "finish_reason": "eos", "score": None}],
        "prompt_token_ids": [5, 6],
        "metrics": {
            "queue_wait_ms": 3.0,
            "model_load_ms": 0.0,
            "model_cache_hit": True,
            "prefill_ms": 10.0,
            "decode_ms": 20.0,
            "new_tokens": 2,
            "tokens_per_s": 50.0,
            "total_ms": 35.0,
            "peak_memory_bytes": 1,
        },
        "environment": {
            "device": "cpu",
            "dtype": "float32",
            "seed": 0,
            "torch_version": "t",
            "transformers_version": "x",
            "batch_size": 1,
            "worker": "w1",
        },
    }


@pytest.mark.django_db
def test_storing_a_result_twice_keeps_one_copy_of_each_output(researcher, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(owner=researcher.user, prompt="Hi", presets=[{"strategy": "greedy"}])
    run = comparison.runs.get()
    assert services.run_store_result(result=_result(run)) is True
    assert services.run_store_result(result=_result(run, text="a different second copy")) is False
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert list(Output.objects.filter(run=run).values_list("text", flat=True)) == ["Paris."]
    assert run.metrics["tokens_per_s"] == 50.0 and run.environment["worker"] == "w1"


@pytest.mark.django_db
def test_a_late_running_report_never_moves_a_finished_run_backwards(
    researcher, broker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(owner=researcher.user, prompt="Hi", presets=[{"strategy": "greedy"}])
    run = comparison.runs.get()
    services.run_mark_running(run_id=str(run.id), attempt=1, worker="w1", started_at=1.0e9)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.worker == "w1"
    services.run_store_result(result=_result(run, error="params.num_beams: too many"))
    services.run_mark_running(run_id=str(run.id), attempt=1, worker="w2", started_at=1.0e9)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == "params.num_beams: too many" and run.error_field == "params.num_beams"


@pytest.mark.django_db
def test_while_the_broker_is_down_a_submission_is_stored_and_the_reaper_dispatches_it_later(
    researcher, broker, django_capture_on_commit_callbacks
):
    from decodelab.config.celery import app
    from decodelab.runs import reaper

    up = app.conf.broker_url
    point_celery_at("redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with django_capture_on_commit_callbacks(execute=True):
            comparison = services.comparison_create(
                owner=researcher.user, prompt="Hi", presets=[{"strategy": "greedy"}]
            )
        run = comparison.runs.get()
        assert (run.status, run.dispatches, run.dispatched_at) == (RunStatus.QUEUED, 0, None)
        sweep = reaper.reap(now=timezone.now() + dt.timedelta(seconds=5))
        assert sweep.broker_down and sweep.dispatched == 0
    finally:
        point_celery_at(up)
    assert broker.llen(QUEUE) == 0
    sweep = reaper.reap(now=timezone.now() + dt.timedelta(seconds=5))
    run.refresh_from_db()
    assert sweep.dispatched == 1 and run.dispatches == 1 and run.status == RunStatus.QUEUED
    assert broker.llen(QUEUE) == 1


@pytest.mark.django_db
def test_the_reaper_resends_a_queued_run_the_broker_lost_but_not_one_it_still_holds(
    researcher, broker, django_capture_on_commit_callbacks, settings
):
    from decodelab.runs import reaper

    settings.DECODELAB_LOST_GRACE_S = 0
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(
            owner=researcher.user, prompt="Hi", presets=[{"strategy": "greedy"}, {"strategy": "greedy"}]
        )
    waiting, delivered = comparison.runs.order_by("position")
    # A worker took the second one (kombu moves a delivered message to its `unacked` hash) but
    # its start is not recorded yet; then the broker loses everything still in the queue.
    raw = next(m for m in broker.lrange(QUEUE, 0, -1) if json.loads(m)["headers"]["id"] == delivered.task_id)
    broker.hset("unacked", "tag-1", json.dumps([raw.decode(), "", QUEUE]))
    broker.delete(QUEUE)
    sweep = reaper.reap(now=timezone.now() + dt.timedelta(seconds=1))
    waiting.refresh_from_db()
    delivered.refresh_from_db()
    assert sweep.redispatched_lost == 1
    assert (waiting.dispatches, delivered.dispatches) == (2, 1)
    assert [json.loads(m)["headers"]["id"] for m in broker.lrange(QUEUE, 0, -1)] == [waiting.task_id]
    assert broker.get(f"decodelab:lease:{waiting.id}").decode() == waiting.task_id  # the old copy would be dropped
