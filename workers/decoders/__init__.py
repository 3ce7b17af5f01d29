"""Decoding strategies, each a plain ``decode`` function (see ``workers.decoders.base``).

``DECODERS`` maps every strategy name in ``workers.strategies.STRATEGIES`` to its decoder.
"""

from __future__ import annotations

from workers.decoders import beam, constrained, contrastive, diverse_beam, greedy, sampling, speculative
from workers.decoders.base import DecodeFn, GeneratedSequence

DECODERS: dict[str, DecodeFn] = {
    "constrained": constrained.decode,
    "greedy": greedy.decode,
    "sampling": sampling.decode,
    "beam": beam.decode,
    "diverse_beam": diverse_beam.decode,
    "contrastive": contrastive.decode,
    "speculative": speculative.decode,
}

# Strategies whose decoders take a batch of runs (``decode_batch``); the others decode one run
# at a time (diverse beam and contrastive search reorder every row each step, beam search and
# constrained decoding are batched per run over their beams and samples only).
BATCHED = frozenset({"greedy", "sampling", "speculative"})

__all__ = ["BATCHED", "DECODERS", "DecodeFn", "GeneratedSequence"]
