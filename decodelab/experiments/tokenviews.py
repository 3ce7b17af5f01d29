"""Token-level views of outputs that the comparison page does not have: a token-aligned diff
of two outputs, and the speculative acceptance histogram. Pure functions of stored data.

Diff: the two outputs' token id lists are aligned with difflib.SequenceMatcher (longest
matching blocks, no junk heuristic). The *first divergence* is the first token position at
which the two outputs differ: the length of their common prefix (None when identical). Token
texts come from the stored traces; an output without a trace shows its token ids.

Acceptance histogram (speculative runs): a verification step's draft tokens are accepted one
after the other until one is rejected; the step then adds a ``corrected`` token, or a
``bonus`` token when all were accepted. Reading the trace's ``spec`` labels, a step is a run of
``accepted`` tokens closed by ``corrected`` or ``bonus`` (or by the end of the output when
decoding stopped mid-step); the histogram counts steps by accepted tokens (0, 1, 2, ...).
``target`` tokens (chosen with no draft) belong to no step.
"""

from __future__ import annotations

import difflib
from typing import Any


def token_texts(token_ids: list[int], trace: list[dict[str, Any]] | None) -> list[str]:
    if trace and len(trace) == len(token_ids):
        return [t["text"] for t in trace]
    return [f"⟨{i}⟩" for i in token_ids]


def first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def token_diff(a_ids: list[int], a_texts: list[str], b_ids: list[int], b_texts: list[str]) -> dict[str, Any]:
    """Both sides as token lists marked same/changed, the aligned blocks and the first divergence."""
    matcher = difflib.SequenceMatcher(None, a_ids, b_ids, autojunk=False)
    first = first_divergence(a_ids, b_ids)
    a_side = [{"text": t, "index": i, "op": "equal", "first": i == first} for i, t in enumerate(a_texts)]
    b_side = [{"text": t, "index": j, "op": "equal", "first": j == first} for j, t in enumerate(b_texts)]
    blocks = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        for tok in a_side[i1:i2]:
            tok["op"] = op
        for tok in b_side[j1:j2]:
            tok["op"] = op
        blocks.append(
            {
                "op": op,
                "a": "".join(a_texts[i1:i2]),
                "b": "".join(b_texts[j1:j2]),
                "a_range": [i1, i2],
                "b_range": [j1, j2],
            }
        )
    same = sum(i2 - i1 for op, i1, i2, _j1, _j2 in matcher.get_opcodes() if op == "equal")
    return {
        "a": a_side,
        "b": b_side,
        "blocks": blocks,
        "first_divergence": first,
        "identical": a_ids == b_ids,
        "common_tokens": same,
        "similarity": round(matcher.ratio(), 4),
    }


def acceptance_histogram(trace: list[dict[str, Any]] | None) -> dict[int, int] | None:
    """Verification steps by accepted draft tokens; None when the output has no spec labels."""
    labels = [t.get("spec") for t in trace or []]
    if not any(labels):
        return None
    histogram: dict[int, int] = {}
    run = 0
    open_step = False
    for label in labels:
        if label == "accepted":
            run += 1
            open_step = True
        elif label in ("corrected", "bonus"):
            histogram[run] = histogram.get(run, 0) + 1
            run, open_step = 0, False
    if open_step:
        histogram[run] = histogram.get(run, 0) + 1
    return dict(sorted(histogram.items()))
