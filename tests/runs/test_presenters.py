import math

import pytest

from decodelab.runs import presenters, selectors, services


def trace_entry(text, logprob, entropy, **extra):
    return {"id": 1, "text": text, "logprob": logprob, "entropy": entropy, "top": [[1, text, logprob]], **extra}


def test_token_spans_scale_probability_and_entropy_and_keep_decoder_facts():
    spans = presenters.token_spans(
        [trace_entry(" Paris", math.log(0.5), 2.0, spec="accepted"), trace_entry(".", 0.0, 9.0, forced=True)]
    )
    assert [s["p"] for s in spans] == ["0.500", "1.000"]
    assert [s["h"] for s in spans] == ["0.500", "1.000"]  # entropy 4 nats or more is full scale
    assert spans[0]["spec"] == "accepted" and spans[1]["forced"] is True
    assert "top:" in spans[0]["title"]


def store(run, token_ids, *, trace=None, metrics=None):
    services.run_store_result(
        result={
            "run_id": str(run.id),
            "attempt": 1,
            "outputs": [
                {
                    "index": 0,
                    "text": "x",
                    "token_ids": token_ids,
                    "finish_reason": "length",
                    "score": None,
                    "metrics": metrics or {},
                    "trace": trace,
                }
            ],
            "prompt_token_ids": [1],
        }
    )


@pytest.mark.django_db
def test_lossless_speculative_runs_are_checked_against_the_greedy_twin(
    researcher, broker, django_capture_on_commit_callbacks
):
    presets = [
        {"strategy": "greedy"},
        {"strategy": "speculative", "params": {"proposer": "prompt_lookup"}},
        {"strategy": "speculative", "params": {"proposer": "prompt_lookup", "max_matching_ngram_size": 3}},
        {"strategy": "speculative", "params": {"do_sample": True}},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(owner=researcher.user, prompt="Hi", presets=presets)
    greedy, same, different, sampled = comparison.runs.order_by("position")
    store(greedy, [5, 6, 7])
    store(same, [5, 6, 7], metrics={"acceptance_rate": 0.5, "drafted": 4})
    store(different, [5, 6, 8])
    store(sampled, [9])
    runs = list(selectors.comparison_get(user=researcher.user, comparison_id=comparison.id).runs.all())
    presenters.annotate(runs)
    assert [r.matches_greedy for r in runs] == [None, True, False, None]
    assert ("acceptance rate", "0.5") in runs[1].outputs.all()[0].metric_items


@pytest.mark.django_db
def test_the_token_view_escapes_model_text(client, researcher, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        comparison = services.comparison_create(owner=researcher.user, prompt="Hi", presets=[{"strategy": "greedy"}])
    store(comparison.runs.get(), [1], trace=[trace_entry("<script>alert(1)</script>", -0.1, 0.5)])
    client.force_login(researcher.user)
    body = client.get(f"/comparisons/{comparison.id}/").content.decode()
    assert 'class="tok"' in body
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
