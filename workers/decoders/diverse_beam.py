"""Diverse (group) beam search with a Hamming diversity penalty, replicating transformers 4.55.4.

Source: Vijayakumar et al. 2016, "Diverse Beam Search: Decoding Diverse Solutions from Neural
Sequence Models" (arXiv:1610.02424), as implemented by transformers 4.x:
``GenerationMixin._group_beam_search`` with ``HammingDiversityLogitsProcessor``,
``BeamSearchScorer`` and ``BeamHypotheses`` (``generation/utils.py``,
``generation/logits_process.py``, ``generation/beam_search.py`` in transformers 4.55.4, the
last release with group beam search in core; transformers 5 moved it out). Specialised to one
prompt (batch size 1), no other logits processor. ``B = num_beams``, ``G = num_beam_groups``,
``S = B // G`` beams per group; group ``g`` owns beam rows ``g*S .. g*S+S-1``.

State: ``B`` running beams (tokens, summed log-probability; the first beam of every group
starts at 0, the others at -1e9 so that a group's first step only expands one beam), and per
group a list of at most ``S`` finished hypotheses (``BeamHypotheses``) with a ``done`` flag.

1. The prompt is repeated to ``[B, prompt_len]`` and prefilled once into a KV cache.
2. Each step (``t`` = tokens generated before it, ``L = t + 1``), the groups in turn,
   ``g = 0 .. G-1``:
   a. ``log_softmax`` of the group's float32 next-token logits ``[S, vocab]``.
   b. Hamming diversity (only if ``diversity_penalty > 0``): subtract
      ``diversity_penalty * count[token]``, where ``count`` is how many times each token was
      chosen at this step by the beams of groups ``0 .. g-1`` (``torch.bincount``).
   c. Add each beam's running sum; keep the top ``K = max(2, 1 + n_eos) * S`` of the
      ``S * vocab`` continuations (``torch.topk``, sorted).
   d. ``BeamSearchScorer.process``, if the group is not done: walk the candidates best first;
      an eos candidate ranked among the first ``S`` becomes a finished hypothesis with score
      ``sum_logprob / L ** length_penalty`` (an eos ranked lower is dropped); every other
      candidate fills the next running beam until ``S`` are filled. Then the group is done
      (sticky) if it holds ``S`` hypotheses and either ``early_stopping`` is True, or
      (False) the worst of them is ``>= best_candidate_sum / L ** length_penalty``, where
      ``best_candidate_sum`` is the best of the ``K`` candidates (eos ones included).
      A done group's rows "choose" the filler token (transformers' pad token, here
      ``eos_token_ids[0]``, which is generate's pad token when none is set): those choices
      count in the Hamming penalty of later groups, as in transformers.
   e. The KV cache rows follow the surviving beams' parents (``Cache.reorder_cache``), then
      every row's chosen token is fed (one forward over ``[B, 1]`` for all groups).
3. The loop ends when every group is done or ``max_new_tokens`` tokens were generated. Then
   (``BeamSearchScorer.finalize``) the running beams of every group not yet done are added to
   that group's hypotheses (score ``sum / max_new_tokens ** length_penalty``), all groups'
   hypotheses are pooled and the ``num_return_sequences`` best are returned (Python's stable
   ``sorted`` then ``pop``, so among equal scores the later one wins, as in transformers).

Stop strings (``stop``, ``workers.decoders.stopping``): in step d a candidate whose tokens
complete a stop string is treated exactly like an eos candidate (a hypothesis with the same
score if it ranks among the group's first ``S``, dropped otherwise, never a running beam), with
finish reason ``"stop"``. Only then, when fewer than ``S`` of the ``K`` candidates can run on,
``K`` is doubled and step c taken again, so that ``S`` beams always run on. Without stop
strings nothing changes.

Hypothesis scores and the done test are Python floats (double precision), as in transformers;
``score`` is that value rounded to float32, which is generate's ``sequences_scores``. Each
output's ``group`` says which group found it.

Differences from transformers' output, on purpose: the returned ``token_ids`` end with the eos
token that was actually generated (transformers stores hypotheses without it and appends
``eos_token_id[0]``, which differs when several eos ids are given). transformers 4.x refuses
``diversity_penalty == 0`` with several groups; here the groups then simply do not interact.
``num_beam_groups == 1`` is plain beam search (``workers.decoders.beam``; greedy search for one
beam), because that is what ``generate`` runs then: transformers 4.55.4 enters group beam search
only for ``num_beam_groups > 1``, and otherwise runs the same beam search as transformers 5.
The two beam searches differ in one rule only, the done test of step d: ``BeamSearchScorer``
compares with the best of the ``K`` candidates (eos ones included), transformers 5's beam search
(and 4.55.4's ``_beam_search``) with the best running beam, which on rare inputs stops it
earlier (``_search(..., best_running_only=True)`` switches to that rule; the tests show it is
the only difference). So group 0's hypotheses equal a ``BeamSearchScorer`` beam search with
``S`` beams, which equals ``workers.decoders.beam`` with ``S`` beams except on those inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from workers.decoders import beam, kv
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
from workers.executor import Execution, Executor, new_executor
from workers.strategies import BeamConfig, DiverseBeamConfig

NEG_INF = -1.0e9  # transformers' initial score of the beams a group does not expand yet


@dataclass
class _Hypothesis:
    score: float  # sum_logprob / generated_len ** length_penalty, a Python float (double)
    token_ids: list[int]
    group: int
    finish_reason: str


@dataclass
class _GroupHypotheses:
    """transformers 4.x ``BeamHypotheses``: the n-best finished hypotheses of one group."""

    size: int  # S, the group's number of beams
    length_penalty: float
    early_stopping: bool | str
    max_new_tokens: int
    beams: list[_Hypothesis] = field(default_factory=list)
    worst_score: float = 1e9

    def add(self, hypothesis: _Hypothesis) -> None:
        if len(self.beams) < self.size or hypothesis.score > self.worst_score:
            self.beams.append(hypothesis)
            if len(self.beams) > self.size:
                ranked = sorted((h.score, idx) for idx, h in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(hypothesis.score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, generated_len: int) -> bool:
        if len(self.beams) < self.size:
            return False
        if self.early_stopping is True:
            return True
        if self.early_stopping is False or self.length_penalty <= 0.0:
            highest_attainable = best_sum_logprobs / generated_len**self.length_penalty
        else:  # "never" with a positive length penalty: the longest possible hypothesis
            highest_attainable = best_sum_logprobs / self.max_new_tokens**self.length_penalty
        return self.worst_score >= highest_attainable


def decode(
    model: Any,
    input_ids: torch.Tensor,
    config: DiverseBeamConfig,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    generator: torch.Generator | None = None,
    on_first_token: Callable[[], None] = no_op,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
    **_resources: Any,  # tokenizer, draft_model: not used here
) -> list[GeneratedSequence]:
    """Diverse-beam-search ``input_ids`` (``[1, prompt_len]``); return the n-best over all groups."""
    del generator  # deterministic
    assert isinstance(config, DiverseBeamConfig), f"expected a DiverseBeamConfig, got {type(config).__name__}"
    kv.check_prompt(input_ids, max_new_tokens)
    num_beams = config.num_beams
    num_groups = config.num_beam_groups
    assert num_beams % num_groups == 0 and 1 <= config.num_return_sequences <= num_beams

    if num_groups == 1:  # generate runs plain beam search (greedy for one beam), and so do we
        out = beam.decode(
            model,
            input_ids,
            BeamConfig(
                num_beams=num_beams,
                num_return_sequences=config.num_return_sequences,
                length_penalty=config.length_penalty,
                early_stopping=config.early_stopping,
            ),
            max_new_tokens=max_new_tokens,
            eos_token_ids=eos_token_ids,
            on_first_token=on_first_token,
            stop=stop,
            execution=execution,
        )
        for seq in out:
            seq.group = 0
        return out

    hypotheses = _search(
        model,
        input_ids,
        num_beams=num_beams,
        num_groups=num_groups,
        diversity_penalty=config.diversity_penalty,
        length_penalty=config.length_penalty,
        early_stopping=config.early_stopping,
        max_new_tokens=max_new_tokens,
        eos_token_ids=[int(i) for i in eos_token_ids],
        on_first_token=on_first_token,
        stop=stop,
        execution=execution,
    )
    # BeamSearchScorer.finalize: pool every group's hypotheses, stable sort, pop the best.
    ranked = sorted(hypotheses, key=lambda h: h.score)
    out: list[GeneratedSequence] = []
    for _ in range(config.num_return_sequences):
        best = ranked.pop()
        out.append(
            GeneratedSequence(
                token_ids=best.token_ids,
                finish_reason=best.finish_reason,
                score=float(torch.tensor(best.score, dtype=torch.float32)),  # sequences_scores is float32
                group=best.group,
            )
        )
    return out


def _search(
    model: Any,
    input_ids: torch.Tensor,
    *,
    num_beams: int,
    num_groups: int,
    diversity_penalty: float,
    length_penalty: float,
    early_stopping: bool | str,
    max_new_tokens: int,
    eos_token_ids: list[int],
    on_first_token: Callable[[], None],
    best_running_only: bool = False,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
) -> list[_Hypothesis]:
    """The group beam search loop; returns every group's finished hypotheses, group by group.

    ``best_running_only`` swaps the done test's best score for transformers 5's (the best
    running beam instead of the best of the ``K`` candidates, eos ones included); it exists so
    that the tests can show that this is the only difference between the two beam searches.
    """
    group_size = num_beams // num_groups  # S
    device = input_ids.device
    filler = eos_token_ids[0] if eos_token_ids else 0  # transformers' pad token; fed to done groups
    eos_set = set(eos_token_ids)
    candidates_per_group = max(2, 1 + len(eos_token_ids)) * group_size  # K
    groups = [_GroupHypotheses(group_size, length_penalty, early_stopping, max_new_tokens) for _ in range(num_groups)]
    done = [False] * num_groups

    with torch.inference_mode():
        # The first beam of every group starts at 0, the others at -1e9.
        beam_scores = torch.full((num_beams,), NEG_INF, dtype=torch.float, device=device)  # [B]
        beam_scores[::group_size] = 0
        tokens = torch.full((num_beams, max_new_tokens), filler, dtype=torch.long, device=device)  # [B, T]

        prompt = input_ids[0].tolist()
        capacity = Executor.capacity_for([len(prompt)], max_new_tokens)
        ex = new_executor(execution, model, rows=num_beams, capacity=capacity)
        logits = ex.prefill([prompt] * num_beams)[:, -1]  # [B, vocab], the prompt repeated
        vocab_size = logits.shape[-1]

        generated_len = 0
        for step in range(max_new_tokens):
            generated_len = step + 1  # L: tokens per beam once this step's token is appended
            current_tokens = torch.zeros(num_beams, dtype=torch.long, device=device)  # [B] this step's choices
            reordering = torch.zeros(num_beams, dtype=torch.long, device=device)  # [B] cache row each beam continues

            for g in range(num_groups):
                lo, hi = g * group_size, (g + 1) * group_size
                if done[g]:  # BeamSearchScorer pads a done group: filler tokens, score 0, parent row 0
                    beam_scores[lo:hi] = 0
                    tokens[lo:hi] = tokens[lo]
                    tokens[lo:hi, step] = filler
                    current_tokens[lo:hi] = filler
                    reordering[lo:hi] = lo
                    continue

                # a. log-probabilities of the group's beams.
                log_probs = torch.log_softmax(logits[lo:hi], dim=-1)  # [S, vocab]
                # b. Hamming diversity against the tokens earlier groups chose at this step.
                if diversity_penalty > 0.0 and g > 0:
                    frequency = torch.bincount(current_tokens[:lo], minlength=vocab_size)  # [vocab]
                    log_probs = log_probs - diversity_penalty * frequency
                # c. top-K continuations of the group (K grows only for stop strings, see above).
                scores = log_probs + beam_scores[lo:hi, None]  # [S, vocab]
                n_keep = candidates_per_group
                while True:
                    top_scores, top_indices = torch.topk(
                        scores.view(1, group_size * vocab_size), n_keep, dim=1, largest=True, sorted=True
                    )  # [1, K] each
                    top_scores, top_indices = top_scores[0], top_indices[0]  # [K]
                    parents = torch.div(top_indices, vocab_size, rounding_mode="floor")  # [K] beam within the group
                    new_tokens = top_indices % vocab_size  # [K]

                    # d. BeamSearchScorer.process: eos (and stop-string) candidates become hypotheses,
                    # the others beams.
                    next_scores = torch.zeros(group_size, dtype=top_scores.dtype, device=device)  # [S]
                    next_tokens = torch.zeros(group_size, dtype=torch.long, device=device)  # [S]
                    next_parents = torch.zeros(group_size, dtype=torch.long, device=device)  # [S]
                    new_hypotheses: list[_Hypothesis] = []
                    filled = 0
                    for rank, (token, parent) in enumerate(zip(new_tokens.tolist(), parents.tolist(), strict=True)):
                        reason = None
                        if token in eos_set:
                            reason = "eos"
                        elif stop is not None and stop.hit([*tokens[lo + parent, :step].tolist(), token]):
                            reason = "stop"
                        if reason is not None:
                            if rank >= group_size:  # an eos outside the group's top S is not admitted
                                continue
                            sum_logprobs = top_scores[rank].item()
                            new_hypotheses.append(
                                _Hypothesis(
                                    score=sum_logprobs / (generated_len**length_penalty),
                                    token_ids=[*tokens[lo + parent, :step].tolist(), token],
                                    group=g,
                                    finish_reason=reason,
                                )
                            )
                        else:
                            next_scores[filled] = top_scores[rank]
                            next_tokens[filled] = token
                            next_parents[filled] = parent
                            filled += 1
                        if filled == group_size:
                            break
                    if filled == group_size or n_keep == group_size * vocab_size:
                        break
                    n_keep = min(2 * n_keep, group_size * vocab_size)  # stop strings took too many
                for hypothesis in new_hypotheses:
                    groups[g].add(hypothesis)
                assert filled == group_size, "K candidates always hold S that do not end in eos or a stop string"
                best_sum = next_scores[0].item() if best_running_only else top_scores.max().item()
                done[g] = done[g] or groups[g].is_done(best_sum, generated_len)

                beam_scores[lo:hi] = next_scores
                tokens[lo:hi] = tokens[lo + next_parents]
                tokens[lo:hi, step] = next_tokens
                current_tokens[lo:hi] = next_tokens
                reordering[lo:hi] = lo + next_parents

            if step == 0:
                on_first_token()
            if all(done) or generated_len == max_new_tokens:
                break
            # e. follow the beams' parents in the cache, feed every row's new token.
            ex.reorder(reordering)
            logits = ex.step(current_tokens[:, None])[:, -1]  # [B, vocab]

        # BeamSearchScorer.finalize: the running beams of groups not done are hypotheses too.
        for g in range(num_groups):
            if done[g]:
                continue
            for row in range(g * group_size, (g + 1) * group_size):
                groups[g].add(
                    _Hypothesis(
                        score=beam_scores[row].item() / (generated_len**length_penalty),
                        token_ids=tokens[row, :generated_len].tolist(),
                        group=g,
                        finish_reason="length",
                    )
                )

    return [h for group in groups for h in group.beams]
