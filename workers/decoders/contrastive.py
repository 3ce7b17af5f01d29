"""Contrastive search, replicating transformers 4.55.4.

Source: Su et al. 2022, "A Contrastive Framework for Neural Text Generation" (NeurIPS 2022,
arXiv:2202.06417), as implemented by transformers 4.x ``GenerationMixin._contrastive_search``
and ``_ranking_fast`` (``generation/utils.py`` in transformers 4.55.4, the last release with
contrastive search in core; transformers 5 moved it out), with its default batched
(``low_memory=False``) path, specialised to one prompt and no logits processor.
``k = top_k``, ``alpha = penalty_alpha``, ``H`` = hidden size.

1. Prefill: run the prompt ``[1, prompt_len]`` once with ``output_hidden_states=True``; keep the
   float32 logits of its last position and its last layer's hidden states ``[1, prompt_len, H]``
   (the context whose similarity is penalised).
2. Each step:
   a. ``softmax`` of the current float32 logits; the ``k`` most likely tokens and their
      probabilities (``torch.topk``).
   b. The KV cache is repeated ``k`` times (``DynamicCache.batch_repeat_interleave``) and the
      ``k`` candidates run as a batch ``[k, 1]`` through one forward (again with hidden states):
      this gives each candidate's last-layer hidden state ``[k, 1, H]`` and the next-token logits
      that follow it.
   c. Degeneration penalty of candidate ``i``: the largest cosine similarity between its hidden
      state and every context hidden state (prompt and tokens chosen so far).
      Score: ``(1 - alpha) * p_i - alpha * penalty_i``; the argmax (``max(dim=-1)``) is chosen.
   d. The chosen candidate's token is appended, its hidden state joins the context, its cache
      row is kept (``DynamicCache.batch_select_indices``) and its logits become the current ones,
      so no further forward is needed for it.
   e. Stop at one of ``eos_token_ids`` (kept, finish reason ``"eos"``), at a token that
      completes one of the ``stop`` strings (kept, ``"stop"``; ``workers.decoders.stopping``)
      or after ``max_new_tokens`` tokens (``"length"``).
   Every step thus costs one forward over ``k`` rows; the prompt is prefilled once.

The arithmetic of step c (normalise, ``matmul`` of the repeated context with the candidates,
``max``) is transformers' own, in its order, so ties and near-ties resolve alike. transformers
adds a padding mask to the cosine matrix; with an unpadded prompt that mask adds ``-0.0``,
which changes no bit, so it is left out.

``penalty_alpha == 0`` is greedy search: ``generate`` only enters contrastive search when
``penalty_alpha > 0``, and so ``decode`` calls ``workers.decoders.greedy`` then (``search``
with ``alpha == 0`` also picks the most likely token, at ``k`` times the cost).

``score`` is the sum of the chosen tokens' log-probabilities under the model (``log_softmax``
of the raw logits, as greedy reports it); it does not influence the choice. ``token_info`` has
one dict per token: ``prob`` (the model's probability of the chosen token),
``degeneration_penalty`` (its max cosine similarity to the context) and ``candidate_rank``
(its rank among the ``k`` candidates by probability, 0 = most likely, i.e. what greedy would
have picked). ``metrics["mean_degeneration_penalty"]`` is the mean of the chosen tokens'
penalties and ``metrics["non_greedy_choices"]`` how many tokens were not the most likely one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from workers.decoders import greedy, kv
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
from workers.executor import Execution, Executor, new_executor, text_config
from workers.strategies import ContrastiveConfig, GreedyConfig


def decode(
    model: Any,
    input_ids: torch.Tensor,
    config: ContrastiveConfig,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    generator: torch.Generator | None = None,
    on_first_token: Callable[[], None] = no_op,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
    **_resources: Any,  # tokenizer, draft_model: not used here
) -> list[GeneratedSequence]:
    """Contrastive-search one continuation of ``input_ids`` (``[1, prompt_len]``)."""
    del generator  # deterministic
    assert isinstance(config, ContrastiveConfig), f"expected a ContrastiveConfig, got {type(config).__name__}"
    kv.check_prompt(input_ids, max_new_tokens)
    if config.penalty_alpha == 0.0:  # generate's GREEDY_SEARCH mode
        return greedy.decode(
            model,
            input_ids,
            GreedyConfig(),
            max_new_tokens=max_new_tokens,
            eos_token_ids=eos_token_ids,
            on_first_token=on_first_token,
            stop=stop,
            execution=execution,
        )
    return [
        search(
            model,
            input_ids,
            penalty_alpha=config.penalty_alpha,
            top_k=config.top_k,
            max_new_tokens=max_new_tokens,
            eos_token_ids=eos_token_ids,
            on_first_token=on_first_token,
            stop=stop,
            execution=execution,
        )
    ]


def _degeneration_penalty(context_hidden: torch.Tensor, candidate_hidden: torch.Tensor) -> torch.Tensor:
    """transformers' ``_ranking_fast`` penalty: ``[k, S, H], [k, 1, H] -> [k]``, the max cosine
    similarity of each candidate's hidden state to the ``S`` context hidden states."""
    assert context_hidden.dim() == 3 and candidate_hidden.dim() == 3 and candidate_hidden.shape[1] == 1
    norm_context = context_hidden / context_hidden.norm(dim=2, keepdim=True)  # [k, S, H]
    norm_candidate = candidate_hidden / candidate_hidden.norm(dim=2, keepdim=True)  # [k, 1, H]
    cosine = torch.matmul(norm_context, norm_candidate.transpose(1, 2)).squeeze(-1)  # [k, S]
    penalty, _ = torch.max(cosine, dim=-1)  # [k]
    return penalty


def search(
    model: Any,
    input_ids: torch.Tensor,
    *,
    penalty_alpha: float,
    top_k: int,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    on_first_token: Callable[[], None] = no_op,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
) -> GeneratedSequence:
    """The contrastive search loop (any ``penalty_alpha`` in [0, 1], ``top_k >= 1``)."""
    kv.check_prompt(input_ids, max_new_tokens)
    assert top_k >= 1 and 0.0 <= penalty_alpha <= 1.0
    eos = {int(i) for i in eos_token_ids}

    with torch.inference_mode():
        prompt = input_ids[0].tolist()
        k = min(top_k, text_config(model).vocab_size)
        capacity = Executor.capacity_for([len(prompt)], max_new_tokens)
        ex = new_executor(execution, model, rows=1, max_rows=k, capacity=capacity)
        # [1, 1, vocab], [1, prompt_len, H]: generate runs the prompt with output_hidden_states=True
        logits, context_hidden = ex.prefill([prompt], hidden=True)
        logits = logits[:, -1]  # [1, vocab]
        k = min(top_k, logits.shape[-1])
        tokens: list[int] = []
        token_info: list[dict[str, Any]] = []
        score = 0.0
        finish_reason = "length"
        for step in range(max_new_tokens):
            # a. the k most likely candidates.
            probs = torch.softmax(logits, dim=-1)  # [1, vocab]
            top_probs, top_ids = torch.topk(probs, dim=-1, k=k)  # [1, k] each

            # b. one forward over the k candidates, each on its own copy of the cache.
            ex.reorder([0] * k)  # the cache repeated k times (DynamicCache.batch_repeat_interleave)
            candidate_logits, candidate_hidden = ex.step(top_ids.view(-1, 1), hidden=True)  # [k, 1, vocab], [k, 1, H]
            candidate_logits = candidate_logits[:, -1]  # [k, vocab]

            # c. model confidence against the degeneration penalty.
            penalty = _degeneration_penalty(context_hidden.repeat_interleave(k, dim=0), candidate_hidden)  # [k]
            contrastive_score = (1.0 - penalty_alpha) * top_probs.view(-1) - penalty_alpha * penalty  # [k]
            _, selected = torch.stack(torch.split(contrastive_score, k)).max(dim=-1)  # [1]
            chosen = int(selected.item())

            # d. keep the chosen candidate: its token, hidden state, cache row and next logits.
            token = int(top_ids[0, chosen])
            score += float(torch.log_softmax(logits, dim=-1)[0, token])
            tokens.append(token)
            token_info.append(
                {
                    "prob": float(top_probs[0, chosen]),
                    "degeneration_penalty": float(penalty[chosen]),
                    "candidate_rank": chosen,
                }
            )
            context_hidden = torch.cat([context_hidden, candidate_hidden[chosen : chosen + 1]], dim=1)  # [1, S+1, H]
            ex.reorder([chosen])
            logits = candidate_logits[chosen : chosen + 1]  # [1, vocab]
            if step == 0:
                on_first_token()
            # e. stop at eos or when the budget is spent.
            if token in eos:
                finish_reason = "eos"
                break
            if stop is not None and stop.hit(tokens):
                finish_reason = "stop"
                break

    penalties = [info["degeneration_penalty"] for info in token_info]
    return GeneratedSequence(
        token_ids=tokens,
        finish_reason=finish_reason,
        score=score,
        metrics={
            "mean_degeneration_penalty": sum(penalties) / len(penalties),
            "non_greedy_choices": sum(1 for info in token_info if info["candidate_rank"] != 0),
        },
        token_info=token_info,
    )
