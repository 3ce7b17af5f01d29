"""Fixtures for the decoder tests: models and a transformers ``generate`` oracle.

Every decoder is checked token for token against ``model.generate`` called on the same
input ids with the equivalent explicit settings. Two kinds of model are used:

- ``tiny_model``: a 2-layer Llama built from a config with random weights (no files), in two
  flavours: ``peaked`` (large init, next-token distributions about as sharp as a real LM's)
  and ``flat`` (default init: nearly uniform distributions, full of near-ties, a stress test
  for matching arithmetic and tie-breaking).
- ``smollm``: SmolLM2-135M-Instruct through ``workers.runtime`` (skipped if not installed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

TINY_VOCAB = 384
TINY_EOS = 2
TINY_PAD = 0


@dataclass
class TinyModel:
    name: str
    model: Any
    vocab_size: int
    eos_token_id: int
    pad_token_id: int

    def prompt(self, seed: int, length: int) -> torch.Tensor:
        """A random ``[1, length]`` prompt avoiding the special ids, independent of global RNG."""
        gen = torch.Generator().manual_seed(seed)
        return torch.randint(3, self.vocab_size, (1, length), generator=gen)


@pytest.fixture(scope="session", params=["peaked", "flat"])
def tiny_model(request: pytest.FixtureRequest) -> TinyModel:
    initializer_range = {"peaked": 0.3, "flat": 0.02}[request.param]
    config = LlamaConfig(
        vocab_size=TINY_VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=TINY_EOS,
        pad_token_id=TINY_PAD,
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    return TinyModel(request.param, model, TINY_VOCAB, TINY_EOS, TINY_PAD)


@pytest.fixture(scope="session")
def smollm() -> Any:
    """The default model, SmolLM2-135M-Instruct, as ``workers.runtime.LoadedModel``."""
    from workers import runtime

    try:
        loaded, _ = runtime.load("smollm2-135m", dtype="float32", device=torch.device("cpu"))
    except (FileNotFoundError, OSError) as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"SmolLM2-135M is not installed here: {exc}")
    return loaded


@pytest.fixture(scope="session")
def smollm_prompts(smollm: Any) -> dict[str, torch.Tensor]:
    """A few ``[1, prompt_len]`` prompts: raw text and chat-templated (transformers 5 returns a
    ``BatchEncoding`` from ``apply_chat_template(..., return_tensors="pt")``)."""
    tok = smollm.tokenizer

    def chat(content: str) -> torch.Tensor:
        enc = tok.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = enc["input_ids"] if hasattr(enc, "keys") else enc
        return ids

    return {
        "plain": tok("The three primary colours are", return_tensors="pt")["input_ids"],
        "chat_capital": chat("What is the capital of France?"),
        "chat_poem": chat("Write a two-line poem about the sea."),
    }


def trim_after_eos(tokens: Sequence[int], eos_token_ids: Sequence[int]) -> list[int]:
    """New tokens up to and including the first eos (generate pads finished rows after it)."""
    out: list[int] = []
    for token in tokens:
        out.append(int(token))
        if token in eos_token_ids:
            break
    return out


@dataclass
class Generated:
    tokens: list[list[int]]  # new tokens per returned row, trimmed after the first eos
    scores: list[float] | None  # beam search's sequences_scores


@pytest.fixture(scope="session")
def hf_generate() -> Any:
    """The oracle: ``hf_generate(model, input_ids, eos_token_ids, pad_token_id, **settings)``.

    Passes an explicit all-ones attention mask (no pad inference from the prompt), explicit
    eos and pad ids, and returns the new tokens of each row trimmed after eos.
    """

    def run(
        model: Any, input_ids: torch.Tensor, *, eos_token_ids: Sequence[int], pad_token_id: int, **settings: Any
    ) -> Generated:
        with torch.inference_mode():
            out = model.generate(
                input_ids,
                attention_mask=torch.ones_like(input_ids),
                eos_token_id=list(eos_token_ids),
                pad_token_id=pad_token_id,
                return_dict_in_generate=True,
                output_scores=True,
                **settings,
            )
        prompt_len = input_ids.shape[1]
        tokens = [trim_after_eos(row[prompt_len:].tolist(), eos_token_ids) for row in out.sequences]
        scores = getattr(out, "sequences_scores", None)
        return Generated(tokens, None if scores is None else scores.tolist())

    return run


class CountingModel:
    """Wraps a model to record the shape of ``input_ids`` of every forward call."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.calls: list[tuple[int, ...]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(tuple(kwargs["input_ids"].shape))
        return self._model(*args, **kwargs)


@pytest.fixture
def counting_model() -> type[CountingModel]:
    return CountingModel
