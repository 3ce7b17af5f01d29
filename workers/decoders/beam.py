"""Beam search with an n-best list, replicating transformers 5.23 exactly.

Source: ``GenerationMixin._beam_search`` and its helpers (``_get_top_k_continuations``,
``_get_running_beams_for_next_iteration``, ``_update_finished_beams``,
``_check_early_stop_heuristic``, ``_beam_search_has_unfinished_sequences``) in
transformers 5.23 ``generation/utils.py``, specialised to one prompt (batch size 1) and
greedy beam search (``do_sample=False``, no logits processor). ``B = num_beams``.

State: ``B`` running beams (tokens, summed log-probability) and ``B`` finished slots
(tokens, length-penalised score, initially empty with score -1e9).

1. The prompt is repeated to ``[B, prompt_len]`` (as ``generate`` expands its inputs) and
   prefilled once into a KV cache. Running scores start at ``[0, -1e9, ..., -1e9]`` so the
   first step only expands beam 0.
2. Each step (``t`` = number of tokens generated before it):
   a. ``log_softmax`` of each beam's float32 next-token logits, plus the beam's running sum.
   b. Keep the top ``K = max(2, 1 + n_eos) * B`` candidates over all ``B * vocab``
      continuations (``torch.topk``, sorted). ``K`` is large enough that at least ``B`` of
      them do not end in eos.
   c. A candidate "hits a stopping criterion" if its new token is an eos id or it reaches
      ``max_new_tokens`` tokens.
   d. Running beams for the next step: the best ``B`` candidates after adding -1e9 to those
      that hit a stopping criterion.
   e. Finished slots: a candidate is eligible only if it hit a stopping criterion and is
      among the first ``B`` of the ``K`` (a finished hypothesis ranked below ``B`` is
      dropped). Its score is ``sum_logprob / (t + 1) ** length_penalty`` where ``t + 1`` is
      the number of *generated* tokens, eos included, prompt excluded. No candidate is
      admitted (-1e9 added) if ``early_stopping is True`` and all ``B`` slots already hold a
      finished hypothesis, or if the early-stop heuristic (step g) already said no
      improvement is possible. The ``B`` best of (old slots + candidates) become the slots.
   f. The KV cache rows are reordered to follow the running beams' parents
      (``Cache.reorder_cache(beam_idx)``), then the beams' new tokens are fed, one forward
      over ``[B, 1]``.
   g. Early-stop heuristic (sticky: once satisfied it stays so): improvement is still
      possible while any *finished* slot's worst score is beaten by
      ``best_running_sum / L ** length_penalty``, where ``L`` is the number of tokens
      generated so far; with ``early_stopping="never"`` and ``length_penalty > 0`` it is
      ``max_new_tokens`` instead. Any slot still empty keeps improvement possible.
   h. Stop when improvement is impossible, or (``early_stopping is True``) all ``B`` slots
      are finished, or every candidate hit a stopping criterion (``max_new_tokens`` reached).
Stop strings (``stop``, ``workers.decoders.stopping``): a candidate whose tokens complete a
stop string hits a stopping criterion exactly like an eos candidate (step c: it cannot run on,
it is admitted as a finished hypothesis with the same score if it ranks among the first
``B``, and its finish reason is ``"stop"``). Only then, step b may keep more than ``K``
candidates: the candidates are checked best first, and ``K`` is doubled (and the top-k
taken again) until at least ``B`` of them do not hit, so that ``B`` beams always run on;
candidates ranked after the ``B``-th that does not hit are neither checked nor used.
Without stop strings nothing of the above changes.

3. Return the first ``num_return_sequences`` slots (they are sorted best first); ``score``
   is the length-penalised score above, which is transformers' ``sequences_scores``.

``num_beams == 1`` is greedy search, as in ``generate`` (which switches to greedy for a
single beam); its score is ``sum_logprob / len ** length_penalty`` for consistency.

The arithmetic (float32 ``log_softmax`` and sums, the -1e9 masks, Python ``int ** float``
penalties) and every ``topk`` are performed in transformers' order, so ties break the same
way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from workers.decoders import greedy, kv
from workers.decoders.base import GeneratedSequence, no_op
from workers.decoders.stopping import StopStrings
from workers.executor import Execution, Executor, new_executor
from workers.strategies import BeamConfig, GreedyConfig

NEG_INF = -1.0e9  # transformers' "very large negative" score for masked beams


def decode(
    model: Any,
    input_ids: torch.Tensor,
    config: BeamConfig,
    *,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    generator: torch.Generator | None = None,
    on_first_token: Callable[[], None] = no_op,
    stop: StopStrings | None = None,
    execution: Execution | None = None,
    **_resources: Any,  # tokenizer, draft_model: not used here
) -> list[GeneratedSequence]:
    """Beam-search ``input_ids`` (``[1, prompt_len]``); return the ``num_return_sequences`` best."""
    del generator  # beam search is deterministic
    assert isinstance(config, BeamConfig), f"expected a BeamConfig, got {type(config).__name__}"
    kv.check_prompt(input_ids, max_new_tokens)
    num_beams = config.num_beams
    n_return = config.num_return_sequences
    length_penalty = config.length_penalty
    early_stopping: bool | str = config.early_stopping
    assert 1 <= n_return <= num_beams

    if num_beams == 1:
        [best] = greedy.decode(
            model,
            input_ids,
            GreedyConfig(),
            max_new_tokens=max_new_tokens,
            eos_token_ids=eos_token_ids,
            on_first_token=on_first_token,
            stop=stop,
            execution=execution,
        )
        best.score = best.score / (len(best.token_ids) ** length_penalty)
        return [best]

    eos_list = [int(i) for i in eos_token_ids]
    device = input_ids.device
    with torch.inference_mode():
        eos_ids = torch.tensor(eos_list, dtype=torch.long, device=device)  # [n_eos]
        beams_to_keep = max(2, 1 + len(eos_list)) * num_beams  # K
        top_num_beam_mask = torch.zeros(beams_to_keep, dtype=torch.bool, device=device)  # [K]
        top_num_beam_mask[:num_beams] = True
        filler = eos_list[0] if eos_list else 0  # fills unused token slots; never returned

        # Running beams.
        running_tokens = torch.full((num_beams, max_new_tokens), filler, dtype=torch.long, device=device)  # [B, T]
        running_scores = torch.zeros(num_beams, dtype=torch.float, device=device)  # [B]
        running_scores[1:] = NEG_INF
        # Finished slots, best first.
        finished_tokens = running_tokens.clone()  # [B, T]
        finished_lengths = torch.zeros(num_beams, dtype=torch.long, device=device)  # [B]
        finished_scores = torch.full((num_beams,), NEG_INF, dtype=torch.float, device=device)  # [B]
        is_finished = torch.zeros(num_beams, dtype=torch.bool, device=device)  # [B]
        finished_stopped = torch.zeros(num_beams, dtype=torch.bool, device=device)  # [B] ended by a stop string
        improvement_possible = True  # not is_early_stop_heuristic satisfied (sticky)

        prompt = input_ids[0].tolist()
        capacity = Executor.capacity_for([len(prompt)], max_new_tokens)
        ex = new_executor(execution, model, rows=num_beams, capacity=capacity)
        logits = ex.prefill([prompt] * num_beams)[:, -1]  # [B, vocab], the prompt repeated as generate does
        vocab_size = logits.shape[-1]

        for step in range(max_new_tokens):
            generated_len = step + 1  # tokens generated once this step's token is appended

            # a. accumulated log-probabilities of every continuation.
            log_probs = torch.log_softmax(logits, dim=-1)  # [B, vocab]
            log_probs = log_probs + running_scores[:, None]  # [B, vocab]
            flat = log_probs.reshape(1, -1)  # [1, B * vocab]

            # b. top-K continuations over all beams (K grows only for stop strings, see above).
            n_keep = beams_to_keep
            need_running = generated_len < max_new_tokens  # on the last step every candidate stops
            while True:
                topk_scores, topk_indices = torch.topk(flat, k=n_keep)  # [1, K] each
                topk_scores, topk_indices = topk_scores[0], topk_indices[0]  # [K]
                parent = topk_indices // vocab_size  # [K] index of the beam each candidate extends
                new_token = topk_indices % vocab_size  # [K]
                cand_tokens = running_tokens[parent]  # [K, T] (a copy)
                cand_tokens[:, step] = new_token

                # c. stopping criteria per candidate: eos, a stop string, or the length budget is spent.
                hits_stop = torch.isin(new_token, eos_ids)  # [K]
                cand_stopped = torch.zeros_like(hits_stop)  # [K] completed a stop string (and is not eos)
                if stop is None:
                    break
                n_running = 0  # candidates so far that can run on
                for rank in range(n_keep):
                    if rank >= num_beams and (n_running >= num_beams or not need_running):
                        hits_stop[rank:] = True  # unchecked: ranked below B runnable ones, never used
                        break
                    if not bool(hits_stop[rank]) and stop.hit(cand_tokens[rank, :generated_len].tolist()):
                        cand_stopped[rank] = True
                        hits_stop[rank] = True
                    n_running += int(not bool(hits_stop[rank]))
                if n_running >= num_beams or not need_running or n_keep == flat.shape[1]:
                    break
                n_keep = min(2 * n_keep, flat.shape[1])
            top_mask = top_num_beam_mask
            if n_keep != beams_to_keep:
                top_mask = torch.zeros(n_keep, dtype=torch.bool, device=device)  # [K]
                top_mask[:num_beams] = True
            if generated_len >= max_new_tokens:
                hits_stop = torch.ones_like(hits_stop)

            # d. running beams for the next step: the best B that did not stop.
            running_candidates = topk_scores + hits_stop.to(torch.float32) * NEG_INF  # [K]
            next_idx = torch.topk(running_candidates, k=num_beams)[1]  # [B]
            running_tokens = cand_tokens[next_idx]  # [B, T]
            running_scores = running_candidates[next_idx]  # [B]
            beam_idx = parent[next_idx]  # [B] cache row each new beam continues

            # e. admit new finished hypotheses (among the top B candidates only).
            just_finished = hits_stop & top_mask  # [K]
            penalised = topk_scores / (generated_len**length_penalty)  # [K]
            slots_full = bool(is_finished.all()) and early_stopping is True
            penalised = penalised + float(slots_full) * NEG_INF
            penalised = penalised + float(not improvement_possible) * NEG_INF
            penalised = penalised + (~just_finished) * NEG_INF
            merged_scores = torch.cat((finished_scores, penalised))  # [B + K]
            keep = torch.topk(merged_scores, k=num_beams)[1]  # [B]
            finished_tokens = torch.cat((finished_tokens, cand_tokens))[keep]  # [B, T]
            finished_lengths = torch.cat(
                (finished_lengths, torch.full((n_keep,), generated_len, dtype=torch.long, device=device))
            )[keep]  # [B]
            finished_scores = merged_scores[keep]  # [B]
            is_finished = torch.cat((is_finished, just_finished))[keep]  # [B]
            finished_stopped = torch.cat((finished_stopped, cand_stopped))[keep]  # [B]

            if step == 0:
                on_first_token()

            # g. early-stop heuristic, then h. the loop's stopping condition.
            if early_stopping == "never" and length_penalty > 0.0:
                best_hypothetical_length = max_new_tokens
            else:
                best_hypothetical_length = generated_len
            best_possible_running = running_scores[:1] / (best_hypothetical_length**length_penalty)  # [1]
            worst_finished = torch.where(is_finished, torch.min(finished_scores), NEG_INF)  # [B]
            improvement_possible = improvement_possible and bool(torch.any(best_possible_running > worst_finished))
            all_slots_done = bool(is_finished.all()) and early_stopping is True
            if not improvement_possible or all_slots_done or bool(hits_stop.all()):
                break

            # f. follow the surviving beams' parents in the cache, feed their new tokens.
            ex.reorder(beam_idx)
            logits = ex.step(running_tokens[:, step : step + 1])[:, -1]  # [B, vocab]

    out: list[GeneratedSequence] = []
    for slot in range(n_return):
        length = int(finished_lengths[slot])
        token_ids = finished_tokens[slot, :length].tolist()
        if token_ids and token_ids[-1] in eos_list:
            finish_reason = "eos"
        else:
            finish_reason = "stop" if bool(finished_stopped[slot]) else "length"
        out.append(
            GeneratedSequence(token_ids=token_ids, finish_reason=finish_reason, score=float(finished_scores[slot]))
        )
    return out
