"""The identity of a decoder configuration: one short hash over everything that changes the
output, the same in comparisons, experiment grids, exports and rankings.

Included: strategy, every parameter (defaults filled in, so ``{}`` and the explicit defaults
hash alike), model name and revision (its package pin and weights checksum), dtype, torch and
transformers versions, max_new_tokens, chat template on/off, stop strings, and the seed
*policy*. Not included: the prompt (a configuration is applied to many prompts) and the seed
value itself (the samples of one configuration differ only by seed).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

HASH_CHARS = 16


def config_identity(
    *,
    model: str,
    strategy: str,
    params: dict[str, Any],
    max_new_tokens: int,
    chat: bool,
    stop: list[str],
    seed_policy: str,
    model_revision: dict[str, Any],
) -> dict[str, Any]:
    """The canonical dictionary that is hashed (shown to users next to the hash)."""
    return {
        "strategy": strategy,
        "params": params,
        "model": model,
        "model_revision": model_revision,
        "max_new_tokens": max_new_tokens,
        "chat": chat,
        "stop": list(stop),
        "seed_policy": seed_policy,
    }


def config_hash(identity: dict[str, Any]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_CHARS]
