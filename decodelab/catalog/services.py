from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from decodelab.catalog import selectors
from decodelab.catalog.models import LanguageModel

FIELDS = (
    "display_name",
    "tokenizer_family",
    "chat_template",
    "installed",
    "prepared",
    "size_bytes",
    "download_mb",
    "dtype",
    "library_versions",
)


@transaction.atomic
def models_report(*, reporter: str, models: list[dict[str, Any]]) -> int:
    """Record what a worker (or `manage.py sync_models`) says it can serve."""
    now = timezone.now()
    for entry in models:
        values = {k: entry[k] for k in FIELDS if k in entry}
        LanguageModel.objects.update_or_create(
            name=entry["name"], defaults={**values, "reported_by": reporter[:200], "last_seen_at": now}
        )
    transaction.on_commit(selectors.offered_cache_clear)
    return len(models)
