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

__all__ = ["DECODERS", "DecodeFn", "GeneratedSequence"]
