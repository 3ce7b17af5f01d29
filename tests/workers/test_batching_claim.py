"""workers.batching: a worker takes compatible queued runs along, from a real redis-server,
with messages published by the web side's own dispatcher."""

from __future__ import annotations

import threading
import uuid

import pytest

from decodelab.runs import dispatch
from workers import batching
from workers.batching import STEP_TIMES, claim, parse_message
from workers.protocol import DecodeRequest, queue_name
from workers.reliability import lease_key

MODEL = "smollm2-135m"
QUEUE = queue_name(MODEL)


def publish(strategy: str = "greedy", *, tokens: int = 16, params: dict | None = None, model: str = MODEL) -> str:
    run_id = str(uuid.uuid4())
    request = DecodeRequest(
        model=model, strategy=strategy, prompt=f"prompt {run_id}", max_new_tokens=tokens, params=params or {},
        run_id=run_id,
    )  # fmt: skip
    dispatch.send_decode(request, task_id=f"{run_id}:1", limits=(100.0, 130.0))
    return run_id


@pytest.fixture(autouse=True)
def _no_measurements():
    STEP_TIMES.seconds.clear()
    yield
    STEP_TIMES.seconds.clear()


def test_messages_parse_back_to_their_request_task_id_and_limits(broker):
    run_id = publish(tokens=12)
    [raw] = broker.lrange(QUEUE, 0, -1)
    taken = parse_message(raw)
    assert taken is not None
    assert taken.task_id == f"{run_id}:1" == broker.get(lease_key(run_id)).decode()
    assert taken.request["run_id"] == run_id and taken.request["max_new_tokens"] == 12
    assert (taken.soft_limit, taken.hard_limit) == (100.0, 130.0)
    assert parse_message(b"not json") is None


def test_a_worker_takes_the_compatible_runs_oldest_first_and_leaves_the_rest_in_order(broker):
    first = publish()
    compatible = [publish(), publish(tokens=8), publish()]
    others = [publish("sampling"), publish(tokens=64), publish("sampling", params={"temperature": 0.5})]
    elsewhere = publish(model="qwen2.5-coder-1.5b")
    first_request = parse_message(broker.rpop(QUEUE)).request  # what Celery delivered to the worker
    assert first_request["run_id"] == first
    taken = claim(broker, QUEUE, first_request, soft_limit=100.0)
    assert [t.request["run_id"] for t in taken] == compatible
    left = [parse_message(raw).request["run_id"] for raw in reversed(broker.lrange(QUEUE, 0, -1))]
    assert left == others, "the others stay queued, oldest first"
    assert broker.llen(queue_name("qwen2.5-coder-1.5b")) == 1 and elsewhere


def test_two_workers_never_take_the_same_run(broker):
    first = publish()
    runs = [publish() for _ in range(30)]
    first_request = parse_message(broker.rpop(QUEUE)).request
    assert first_request["run_id"] == first
    got: list[list[str]] = [[], []]

    def worker(i: int) -> None:
        while True:
            taken = claim(broker, QUEUE, first_request, soft_limit=100.0)
            if not taken:
                return
            got[i] += [t.request["run_id"] for t in taken]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(runs)


def test_batch_size_and_time_budget_bound_what_is_taken(broker, monkeypatch):
    publish()
    for _ in range(6):
        publish()
    first_request = parse_message(broker.rpop(QUEUE)).request
    monkeypatch.setenv("DECODELAB_MAX_BATCH", "3")
    assert len(claim(broker, QUEUE, first_request, soft_limit=100.0)) == 2
    monkeypatch.setenv("DECODELAB_MAX_BATCH", "16")
    # Measured: 2 s per step for 2 rows here, so 16 tokens take 32 s; 80 % of a 30 s limit allows none.
    STEP_TIMES.record(MODEL, 2, 10, 20.0)
    assert claim(broker, QUEUE, first_request, soft_limit=30.0) == []
    STEP_TIMES.seconds.clear()
    STEP_TIMES.record(MODEL, 1, 10, 0.1)  # 10 ms per step alone: the rest fits easily
    assert len(claim(broker, QUEUE, first_request, soft_limit=40.0)) == 4


def test_strategies_that_decode_alone_take_nothing(broker):
    publish("beam", params={"num_beams": 2})
    publish("beam", params={"num_beams": 2})
    first_request = parse_message(broker.rpop(QUEUE)).request
    assert claim(broker, QUEUE, first_request, soft_limit=100.0) == []
    assert broker.llen(QUEUE) == 1
    assert batching.batch_key(first_request) is None
