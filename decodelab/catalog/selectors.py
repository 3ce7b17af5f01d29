"""What can be run: the models workers reported, and the decoding strategies with their
parameters (read from the torch-free worker protocol)."""

from __future__ import annotations

import copy
import time
from typing import Any

from django.conf import settings

from decodelab.catalog.models import LanguageModel
from workers.models import CATALOG
from workers.strategies import STRATEGIES


def strategy_list() -> list[dict[str, Any]]:
    return [
        {"name": name, "description": cls.description, "params": cls.param_specs()} for name, cls in STRATEGIES.items()
    ]


def model_list() -> list[dict[str, Any]]:
    """Installed models; the default model is always offered (its worker is part of `make run`)."""
    default = settings.DECODELAB_DEFAULT_MODEL
    rows = {m.name: m for m in LanguageModel.objects.filter(installed=True)}
    names = sorted(set(rows) | {default}, key=lambda n: (n != default, n))
    out = []
    for name in names:
        row, spec = rows.get(name), CATALOG.get(name)
        family = row.tokenizer_family if row else (spec.tokenizer_family if spec else name)
        out.append(
            {
                "name": name,
                "display_name": row.display_name if row else (spec.display_name if spec else name),
                "tokenizer_family": family,
                "chat_template": row.chat_template if row else bool(spec and spec.chat_template),
                "prepared": bool(row and row.prepared),
                "size_bytes": row.size_bytes if row else None,
                "default": name == default,
            }
        )
    for m in out:
        m["draft_models"] = [d["name"] for d in out if d["tokenizer_family"] == m["tokenizer_family"]]
    return out


# The offered models, read by every submission, are kept for a few seconds per process:
# workers report rarely, and a report clears this process's copy.
CATALOGUE_CACHE_S = 5.0
_catalogue_cache: dict[Any, tuple[float, Any]] = {}


def _cached(key: Any, compute) -> Any:
    now = time.monotonic()
    hit = _catalogue_cache.get(key)
    if hit is not None and now - hit[0] < CATALOGUE_CACHE_S:
        return copy.deepcopy(hit[1])
    value = compute()
    _catalogue_cache[key] = (now, value)
    return copy.deepcopy(value)


def offered_cache_clear() -> None:
    _catalogue_cache.clear()


def offered_model_names() -> list[str]:
    """Names of the models a submission may use."""
    return _cached("offered", lambda: [m["name"] for m in model_list()])


def draft_models_for(target: str) -> list[str]:
    return next((m["draft_models"] for m in model_list() if m["name"] == target), [])


def model_revision(name: str) -> dict[str, Any]:
    """What pins a model's weights and numerics, for configuration hashes: its packages and
    checksum, and the dtype and library versions its worker last reported. Never cached: a
    configuration hash must change the moment a worker reports new versions."""
    spec = CATALOG.get(name)
    row = LanguageModel.objects.filter(name=name).only("dtype", "library_versions").first()
    return {
        "packages": list(spec.requirements) if spec else [],
        "sha256": spec.sha256 if spec else None,
        "dtype": row.dtype if row else "",
        "library_versions": row.library_versions if row else {},
    }
