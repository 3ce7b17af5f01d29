"""Token traces recompute, in one teacher-forced pass, what generate saw step by step."""

import math

import pytest
import torch

from workers import runtime
from workers.trace import TOP_N, token_trace


@pytest.fixture(scope="module")
def smollm():
    return runtime.load("smollm2-135m")[0]


def test_trace_logprobs_and_entropy_equal_generates_step_logits(smollm):
    prompt = smollm.tokenizer("The capital of France is").input_ids
    with torch.inference_mode():
        out = smollm.model.generate(
            torch.tensor([prompt]), max_new_tokens=8, do_sample=False, output_logits=True, return_dict_in_generate=True
        )
    new = out.sequences[0, len(prompt) :].tolist()
    trace = token_trace(smollm.model, smollm.tokenizer, prompt, new)
    assert [t["id"] for t in trace] == new
    for step, entry in enumerate(trace):
        logprobs = torch.log_softmax(out.logits[step][0].float(), dim=-1)
        assert entry["logprob"] == pytest.approx(float(logprobs[new[step]]), abs=1e-3)
        expected_entropy = float(-(logprobs.exp() * logprobs).sum())
        assert entry["entropy"] == pytest.approx(expected_entropy, abs=1e-3)
        assert len(entry["top"]) == TOP_N
        assert entry["top"][0][0] == new[step]  # greedy: the chosen token is the most likely
        assert entry["top"][0][2] >= entry["top"][-1][2]
        assert math.isclose(entry["logprob"], entry["top"][0][2], abs_tol=1e-6)
    assert "".join(t["text"] for t in trace) == smollm.tokenizer.decode(new)


def test_decoder_token_info_is_merged_into_the_trace(smollm):
    prompt = smollm.tokenizer("Hello").input_ids
    info = [{"spec": "accepted"}, {"spec": "bonus"}]
    trace = token_trace(smollm.model, smollm.tokenizer, prompt, [28, 30], info)
    assert [t["spec"] for t in trace] == ["accepted", "bonus"]
    assert token_trace(smollm.model, smollm.tokenizer, prompt, []) == []
