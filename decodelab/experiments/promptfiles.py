"""Reading prompt sets from JSONL or CSV uploads, and checking prompt rows from any source.

Format (both): a ``prompt`` (required), an optional ``id`` (default: the line number),
``reference`` (a reference answer) and ``tags`` (JSONL: a list of strings; CSV: separated by
``;``). Any other column or key is an error, so a file with the wrong columns is refused as a
whole instead of being half understood. Files must be UTF-8 (a byte-order mark is allowed).

Every error names the line (CSV: the file line, the header is line 1) and the field. Rows
whose prompt text repeats an earlier row are kept and flagged (``duplicate_of`` = the line of
the first occurrence); experiments skip them unless asked not to.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from decodelab.common.errors import ApplicationError
from workers.protocol import MAX_PROMPT_CHARS

MAX_PROMPTS_PER_SET = 1000
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_ID_CHARS = 200
MAX_REFERENCE_CHARS = 20_000
MAX_TAGS = 16
MAX_TAG_CHARS = 64
MAX_REPORTED_ERRORS = 20
COLUMNS = ("id", "prompt", "reference", "tags")
FORMATS = ("jsonl", "csv")


@dataclass
class PromptRow:
    line: int
    prompt: str
    external_id: str = ""
    reference: str = ""
    tags: list[str] = field(default_factory=list)
    duplicate_of: int | None = None  # the line of the first row with the same prompt


class RowErrors:
    """Collects up to MAX_REPORTED_ERRORS messages; raises them as one 400 naming ``field``."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def raise_if_any(self) -> None:
        if not self.messages:
            return
        shown = self.messages[:MAX_REPORTED_ERRORS]
        if len(self.messages) > len(shown):
            shown.append(f"... and {len(self.messages) - len(shown)} more errors")
        raise ApplicationError(shown[0], field=self.field, extra={"errors": {self.field: shown}})


def detect_format(filename: str, requested: str = "") -> str:
    if requested:
        if requested not in FORMATS:
            raise ApplicationError(f"must be one of {', '.join(FORMATS)} (got {requested!r})", field="format")
        return requested
    lower = filename.lower()
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lower.endswith((".csv", ".tsv")):
        return "csv"
    raise ApplicationError(
        f"cannot tell the format of {filename!r}: name it .jsonl or .csv, or give format=jsonl|csv", field="format"
    )


def decode_upload(data: bytes, filename: str, size: int | None = None) -> str:
    """``size`` is the file's full size when the caller read at most MAX_UPLOAD_BYTES + 1 bytes."""
    size = max(size or 0, len(data))
    if size > MAX_UPLOAD_BYTES:
        raise ApplicationError(
            f"{filename!r} is {size:,} bytes; the limit is {MAX_UPLOAD_BYTES:,} bytes (2 MB)", field="file"
        )
    if not data.strip():
        raise ApplicationError(f"{filename!r} is empty", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApplicationError(
            f"{filename!r} is not UTF-8 text (invalid byte 0x{data[exc.start]:02x} at byte {exc.start}); "
            "save it as UTF-8 and upload it again",
            field="file",
        ) from None
    if "\x00" in text:
        raise ApplicationError(f"{filename!r} contains NUL characters; is it a binary file?", field="file")
    return text


def parse_upload(
    data: bytes, filename: str, requested_format: str = "", size: int | None = None
) -> tuple[str, list[PromptRow]]:
    """Bytes of an uploaded file to checked rows (duplicates flagged). Raises ApplicationError."""
    fmt = detect_format(filename, requested_format)
    text = decode_upload(data, filename, size)
    tab = filename.lower().endswith(".tsv")
    raw = _jsonl_records(text) if fmt == "jsonl" else _csv_records(text, "\t" if tab else ",")
    return fmt, check_rows(raw, field="file")


def _jsonl_records(text: str) -> list[tuple[int, dict[str, Any]]]:
    errors = RowErrors("file")
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.add(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(record, dict):
            errors.add(f"line {number}: must be a JSON object with a 'prompt' key")
            continue
        unknown = sorted(set(record) - set(COLUMNS))
        if unknown:
            errors.add(f"line {number}: unknown key {unknown[0]!r} (allowed: {', '.join(COLUMNS)})")
            continue
        records.append((number, record))
        if len(records) > MAX_PROMPTS_PER_SET:
            break  # check_rows reports the limit
    errors.raise_if_any()
    return records


def _csv_records(text: str, delimiter: str) -> list[tuple[int, dict[str, Any]]]:
    # No dialect sniffing: prompts full of commas and semicolons fool csv.Sniffer.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ApplicationError("the CSV file has no header row", field="file") from None
    except csv.Error as exc:
        raise ApplicationError(f"line 1: not valid CSV ({exc})", field="file") from None
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ApplicationError(
            f"line 1: unknown column {unknown[0]!r} (allowed: {', '.join(COLUMNS)}; 'prompt' is required)",
            field="file",
        )
    if "prompt" not in header:
        raise ApplicationError("line 1: the header has no 'prompt' column", field="file")
    if len(set(header)) != len(header):
        raise ApplicationError("line 1: a column name appears twice", field="file")
    errors = RowErrors("file")
    records = []
    try:
        for values in reader:
            number = reader.line_num
            if not any(v.strip() for v in values):
                continue
            if len(values) != len(header):
                errors.add(f"line {number}: {len(values)} values for {len(header)} columns")
                continue
            record: dict[str, Any] = dict(zip(header, values, strict=True))
            if "tags" in record:
                record["tags"] = [t.strip() for t in record["tags"].split(";") if t.strip()]
            records.append((number, record))
            if len(records) > MAX_PROMPTS_PER_SET:
                break
    except csv.Error as exc:
        errors.add(f"line {reader.line_num}: not valid CSV ({exc})")
    errors.raise_if_any()
    return records


def check_rows(records: list[tuple[int, dict[str, Any]]], *, field: str) -> list[PromptRow]:
    """Validate rows from any source (upload, JSON body, form); flag duplicate prompts.

    ``records`` are (line or position, mapping) pairs; messages say "line N" for files and
    "prompts[N]" for JSON bodies through ``field``.
    """
    if not records:
        raise ApplicationError("no prompts found", field=field)
    if len(records) > MAX_PROMPTS_PER_SET:
        raise ApplicationError(
            f"at most {MAX_PROMPTS_PER_SET:,} prompts per set (got more than {MAX_PROMPTS_PER_SET:,})", field=field
        )
    errors = RowErrors(field)
    where = (lambda n: f"line {n}") if field == "file" else (lambda n: f"{field}[{n}]")
    rows: list[PromptRow] = []
    ids: dict[str, int] = {}
    first_by_prompt: dict[str, int] = {}
    for number, record in records:
        row = _check_row(number, record, where(number), errors)
        if row is None:
            continue
        if row.external_id in ids:
            errors.add(f"{where(number)}: id {row.external_id!r} is already used by {where(ids[row.external_id])}")
            continue
        ids[row.external_id] = number
        row.duplicate_of = first_by_prompt.setdefault(row.prompt, number)
        if row.duplicate_of == number:
            row.duplicate_of = None
        rows.append(row)
    errors.raise_if_any()
    return rows


def _check_row(number: int, record: dict[str, Any], at: str, errors: RowErrors) -> PromptRow | None:
    prompt = record.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        errors.add(f"{at}: prompt must be a non-empty string")
        return None
    if len(prompt) > MAX_PROMPT_CHARS:
        errors.add(f"{at}: prompt must be at most {MAX_PROMPT_CHARS:,} characters (got {len(prompt):,})")
        return None
    raw_id = record.get("id")
    if raw_id in (None, ""):
        external_id = str(number)
    elif isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
        external_id = str(raw_id).strip()
        if not external_id or len(external_id) > MAX_ID_CHARS:
            errors.add(f"{at}: id must be 1 to {MAX_ID_CHARS} characters")
            return None
    else:
        errors.add(f"{at}: id must be a string or an integer")
        return None
    reference = record.get("reference") or ""
    if not isinstance(reference, str) or len(reference) > MAX_REFERENCE_CHARS:
        errors.add(f"{at}: reference must be a string of at most {MAX_REFERENCE_CHARS:,} characters")
        return None
    tags = record.get("tags") or []
    if (
        not isinstance(tags, list)
        or len(tags) > MAX_TAGS
        or not all(isinstance(t, str) and 0 < len(t) <= MAX_TAG_CHARS for t in tags)
    ):
        errors.add(f"{at}: tags must be at most {MAX_TAGS} strings of 1 to {MAX_TAG_CHARS} characters")
        return None
    return PromptRow(line=number, prompt=prompt, external_id=external_id, reference=reference, tags=list(tags))
