"""Outputs recorded from transformers 4.55.4 (scripts/record_decoder_references.py), the last
version with diverse (group) beam search and contrastive search in core, and the checks that
a model is the one the recording used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

REFERENCES = json.loads((Path(__file__).parent / "data" / "reference_outputs.json").read_text())


def state_dict_sha256(model) -> str:
    """The recording script's weight fingerprint: SHA-256 over every tensor, by sorted name."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def recorded_cases(model_name: str, strategy: str) -> list[dict]:
    return [c for c in REFERENCES["cases"] if c["model"] == model_name and c["strategy"] == strategy]


def assert_is_the_recorded_model(model, model_name: str) -> None:
    recorded = REFERENCES["models"][model_name]
    for key, value in recorded.get("config", {}).items():
        assert getattr(model.config, key) == value, f"{model_name}: config {key} differs from the recording"
    assert state_dict_sha256(model) == recorded["state_dict_sha256"], f"{model_name}: weights differ from the recording"
