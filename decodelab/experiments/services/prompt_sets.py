"""Prompt sets: from a JSON list, from an uploaded JSONL or CSV file (promptfiles), delete."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from decodelab.common.errors import ApplicationError
from decodelab.experiments import promptfiles
from decodelab.experiments.models import (
    PromptItem,
    PromptSet,
)
from decodelab.experiments.services.common import checked_name

# --- prompt sets -------------------------------------------------------------------------


def _store_prompt_set(
    *, owner, name: str, description: str, source: str, filename: str, rows: list[promptfiles.PromptRow]
) -> PromptSet:
    prompt_set = PromptSet(owner=owner, name=name, description=description, source=source, filename=filename[:255])
    prompt_set.full_clean()
    prompt_set.save()
    items = PromptItem.objects.bulk_create(
        [
            PromptItem(
                prompt_set=prompt_set,
                position=i,
                external_id=row.external_id,
                prompt=row.prompt,
                reference=row.reference,
                tags=row.tags,
            )
            for i, row in enumerate(rows)
        ]
    )
    by_line = {row.line: item for row, item in zip(rows, items, strict=True)}
    flagged = []
    for row, item in zip(rows, items, strict=True):
        if row.duplicate_of is not None:
            item.duplicate_of = by_line[row.duplicate_of]
            flagged.append(item)
    PromptItem.objects.bulk_update(flagged, ["duplicate_of"])
    return prompt_set


@transaction.atomic
def prompt_set_create(*, owner, name: Any, prompts: Any, description: str = "") -> PromptSet:
    """A prompt set from a list of ``{"prompt", "id"?, "reference"?, "tags"?}`` (or strings)."""
    name = checked_name(name)
    if not isinstance(prompts, list):
        raise ApplicationError("must be a list of prompts", field="prompts")
    records = []
    for i, p in enumerate(prompts):
        record = {"prompt": p} if isinstance(p, str) else p
        if not isinstance(record, dict):
            raise ApplicationError("must be a string or an object with a 'prompt'", field=f"prompts[{i}]")
        records.append((i, record))
    rows = promptfiles.check_rows(records, field="prompts")
    return _store_prompt_set(owner=owner, name=name, description=description, source="manual", filename="", rows=rows)


@transaction.atomic
def prompt_set_upload(
    *, owner, name: Any, data: bytes, filename: str, file_format: str = "", size: int | None = None
) -> PromptSet:
    """A prompt set from an uploaded JSONL or CSV file (see promptfiles for the format)."""
    fmt, rows = promptfiles.parse_upload(data, filename, file_format, size)
    name = checked_name(name or filename.rsplit("/", 1)[-1].rsplit(".", 1)[0] or "upload")
    return _store_prompt_set(owner=owner, name=name, description="", source=fmt, filename=filename, rows=rows)


@transaction.atomic
def prompt_set_delete(*, prompt_set: PromptSet) -> None:
    used = prompt_set.experiments.count()
    if used:
        raise ApplicationError(f"is used by {used} experiment(s); it is kept with them", field="prompt_set")
    prompt_set.delete()
