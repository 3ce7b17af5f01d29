"""Per-configuration metrics from plain rows (definitions: decodelab/experiments/aggregate.py)."""

import pytest

from decodelab.experiments.aggregate import configuration_metrics, summary


def test_summary_is_median_and_quartiles_with_n():
    assert summary([4.0, None, 1.0, 2.0, 3.0]) == {"median": 2.5, "p25": 1.75, "p75": 3.25, "n": 4}
    assert summary([None]) == {"median": None, "p25": None, "p75": None, "n": 0}


def run(i, config, item, status="succeeded", tps=10.0, env="cpu"):
    metrics = {"tokens_per_s": tps, "prefill_ms": 5.0 * i} if status == "succeeded" else None
    environment = {"device": env, "dtype": "float32", "torch_version": "2", "transformers_version": "5"}
    return {
        "id": i,
        "config_hash": config,
        "item_id": item,
        "status": status,
        "metrics": metrics,
        "environment": environment if status == "succeeded" else None,
    }


def out(run_id, text, finish="eos", valid=None, n_tokens=3):
    return {
        "run_id": run_id,
        "text": text,
        "token_ids": list(range(n_tokens)),
        "finish_reason": finish,
        "metrics": {} if valid is None else {"valid": valid},
        "trace": [{"logprob": -1.0}, {"logprob": -3.0}],
    }


def test_rates_diversity_and_speed_per_configuration():
    configs = [
        {"config_hash": "g", "label": "greedy", "strategy": "greedy", "model": "m"},
        {"config_hash": "c", "label": "json", "strategy": "constrained", "model": "m"},
    ]
    runs = [
        run(1, "g", 1, tps=10),
        run(2, "g", 1, tps=30),
        run(3, "g", 2, status="failed"),
        run(4, "c", 1),
        run(5, "c", 2),
        run(6, "c", 2, status="queued"),
    ]
    outputs = [
        out(1, "the cat sat"),
        out(2, "the cat ran", finish="length"),
        out(4, '{"a": 1}', valid=True),
        out(5, "  ", valid=False, n_tokens=0),
        out(5, "{}", valid=True),
    ]
    metrics = configuration_metrics(configs, runs, outputs)
    greedy, constrained = metrics["configurations"]
    assert greedy["runs"] == {"total": 3, "succeeded": 2, "failed": 1, "cancelled": 0, "unfinished": 0}
    assert greedy["tokens_per_s"]["median"] == 20.0 and greedy["tokens_per_s"]["n"] == 2
    assert greedy["distinct_1"] == {
        "median": pytest.approx(4 / 6),
        "p25": pytest.approx(4 / 6),
        "p75": pytest.approx(4 / 6),
        "n": 1,
    }
    assert greedy["self_bleu"]["median"] == pytest.approx((2 / 9) ** 0.25)
    assert greedy["nonterminating_rate"] == 0.5 and greedy["empty_rate"] == 0.0 and greedy["validity_rate"] is None
    assert greedy["mean_logprob"]["median"] == -2.0 and greedy["output_tokens"]["median"] == 3
    assert constrained["runs"]["unfinished"] == 1 and constrained["outputs"] == 3
    assert constrained["validity_rate"] == pytest.approx(2 / 3) and constrained["empty_rate"] == pytest.approx(1 / 3)
    assert constrained["self_bleu"]["n"] == 1  # only prompt 2's cell has two outputs
    assert metrics["environment"]["mismatch"] is False


def test_environment_mismatch_lists_each_environment():
    configs = [{"config_hash": "g", "label": "g", "strategy": "greedy", "model": "m"}]
    env = configuration_metrics(configs, [run(1, "g", 1), run(2, "g", 1, env="cuda:0")], [])["environment"]
    assert env["mismatch"] is True and {e["device"]: e["runs"] for e in env["environments"]} == {"cpu": 1, "cuda:0": 1}
