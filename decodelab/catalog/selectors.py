"""What can be run: models this deployment serves and the decoding strategies with their
parameters, defaults and descriptions (read from the torch-free worker protocol)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.conf import settings

from workers.models import CATALOG
from workers.strategies import STRATEGIES


def strategy_list() -> list[dict[str, Any]]:
    out = []
    for name, cls in STRATEGIES.items():
        params = [
            {"name": f.name, "type": type(f.default).__name__, "default": f.default} for f in dataclasses.fields(cls)
        ]
        out.append({"name": name, "description": cls.description, "params": params})
    return out


def model_list() -> list[dict[str, Any]]:
    out = []
    for name in settings.DECODELAB_MODELS:
        spec = CATALOG.get(name)
        out.append(
            {
                "name": name,
                "display_name": spec.display_name if spec else name,
                "chat_template": spec.chat_template if spec else False,
                "default": name == settings.DECODELAB_DEFAULT_MODEL,
            }
        )
    return out
