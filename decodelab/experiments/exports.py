"""Exports of an experiment as JSONL, CSV or Parquet: one row per output.

A run without outputs (failed, cancelled, unfinished) still gets one row, with an empty
``output_index``, so nothing the experiment attempted is missing. Rows are generated from
``.iterator()`` over runs in chunks (one outputs query per chunk), so memory stays flat for large
experiments: JSONL and CSV stream straight to the client; Parquet is written in record batches to
a temporary file that is then streamed. JSON-valued columns (params, metrics, config, environment,
trace) are JSON strings in CSV and Parquet. CSV cells are the raw texts: model outputs may begin
with ``=`` or ``+``, so open the file with a CSV reader rather than as a spreadsheet formula.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq
from django.db.models import F
from django.http import FileResponse, StreamingHttpResponse

from decodelab.experiments.models import Experiment
from decodelab.experiments.selectors import experiment_runs
from decodelab.runs.models import Output

FORMATS = ("jsonl", "csv", "parquet")
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
}
RUN_METRICS = (
    "prefill_ms",
    "decode_ms",
    "new_tokens",
    "tokens_per_s",
    "total_ms",
    "queue_wait_ms",
    "peak_memory_bytes",
)
CHUNK = 200
PARQUET_BATCH = 500

STRING, INT, FLOAT, JSON = pa.string(), pa.int64(), pa.float64(), "json"
COLUMNS: list[tuple[str, Any]] = [
    ("experiment_id", STRING),
    ("experiment", STRING),
    ("prompt_id", STRING),
    ("prompt", STRING),
    ("reference", STRING),
    ("config_hash", STRING),
    ("preset", STRING),
    ("strategy", STRING),
    ("params", JSON),
    ("model", STRING),
    ("seed", INT),
    ("sample", INT),
    ("run_id", STRING),
    ("status", STRING),
    ("error", STRING),
    ("output_index", INT),
    ("text", STRING),
    ("finish_reason", STRING),
    ("score", FLOAT),
    ("group", INT),
    ("output_tokens", INT),
    *[(name, INT if name in ("new_tokens", "peak_memory_bytes") else FLOAT) for name in RUN_METRICS],
    ("run_metrics", JSON),
    ("output_metrics", JSON),
    ("config", JSON),
    ("environment", JSON),
]
TRACE_COLUMN = ("trace", JSON)


def columns(traces: bool) -> list[tuple[str, Any]]:
    return [*COLUMNS, TRACE_COLUMN] if traces else COLUMNS


def rows(experiment: Experiment, *, traces: bool = False) -> Iterator[dict[str, Any]]:
    """Export rows in prompt, configuration, sample, output order (JSON columns as objects)."""
    identity = {c.config_hash: c.identity for c in experiment.configs.all()}
    runs = (
        experiment_runs(experiment)
        .annotate(
            prompt_id=F("comparison__experiment_link__item__external_id"),
            item_position=F("comparison__experiment_link__item__position"),
            reference=F("comparison__experiment_link__item__reference"),
            prompt=F("comparison__prompt"),
            model=F("comparison__model"),
        )
        .order_by("item_position", "comparison_id", "position")
        .values(
            "id", "prompt_id", "prompt", "reference", "config_hash", "label", "strategy", "params", "model",
            "seed", "sample", "status", "error", "metrics", "environment",
        )
    )  # fmt: skip
    fields = ["run_id", "index", "text", "finish_reason", "score", "group", "token_ids", "metrics"]
    if traces:
        fields.append("trace")
    chunk: list[dict[str, Any]] = []

    def flush() -> Iterator[dict[str, Any]]:
        outs: dict[Any, list[dict[str, Any]]] = {}
        for out in Output.objects.filter(run_id__in=[r["id"] for r in chunk]).order_by("index").values(*fields):
            outs.setdefault(out["run_id"], []).append(out)
        for run in chunk:
            for out in outs.get(run["id"]) or [None]:
                yield _row(experiment, run, out, identity, traces)

    for run in runs.iterator(chunk_size=CHUNK):
        chunk.append(run)
        if len(chunk) == CHUNK:
            yield from flush()
            chunk = []
    if chunk:
        yield from flush()


def _row(experiment, run: dict, out: dict | None, identity: dict, traces: bool) -> dict[str, Any]:
    metrics = run["metrics"] or {}
    row = {
        "experiment_id": str(experiment.id),
        "experiment": experiment.name,
        "prompt_id": run["prompt_id"],
        "prompt": run["prompt"],
        "reference": run["reference"],
        "config_hash": run["config_hash"],
        "preset": run["label"],
        "strategy": run["strategy"],
        "params": run["params"],
        "model": run["model"],
        "seed": run["seed"],
        "sample": run["sample"],
        "run_id": str(run["id"]),
        "status": run["status"],
        "error": run["error"],
        "output_index": out["index"] if out else None,
        "text": out["text"] if out else None,
        "finish_reason": out["finish_reason"] if out else None,
        "score": out["score"] if out else None,
        "group": out["group"] if out else None,
        "output_tokens": len(out["token_ids"]) if out else None,
        **{name: metrics.get(name) for name in RUN_METRICS},
        "run_metrics": run["metrics"],
        "output_metrics": out["metrics"] if out else None,
        "config": identity.get(run["config_hash"]),
        "environment": run["environment"],
    }
    if traces:
        row["trace"] = out["trace"] if out else None
    return row


def jsonl_stream(experiment: Experiment, *, traces: bool = False) -> Iterator[str]:
    for row in rows(experiment, traces=traces):
        yield json.dumps(row, ensure_ascii=False) + "\n"


def _flat(row: dict[str, Any], cols: list[tuple[str, Any]]) -> list[Any]:
    return [
        json.dumps(row[name], ensure_ascii=False) if kind == JSON and row[name] is not None else row[name]
        for name, kind in cols
    ]


def csv_stream(experiment: Experiment, *, traces: bool = False) -> Iterator[str]:
    cols = columns(traces)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([name for name, _kind in cols])
    for row in rows(experiment, traces=traces):
        writer.writerow(["" if v is None else v for v in _flat(row, cols)])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def parquet_schema(traces: bool) -> pa.Schema:
    return pa.schema([(name, pa.string() if kind == JSON else kind) for name, kind in columns(traces)])


def parquet_file(experiment: Experiment, *, traces: bool = False) -> IO[bytes]:
    """A temporary file (deleted when closed) holding the Parquet export, positioned at 0."""
    cols = columns(traces)
    schema = parquet_schema(traces).with_metadata(
        {"decodelab.experiment": json.dumps({"id": str(experiment.id), "name": experiment.name})}
    )
    # Not a context manager: the caller streams the file and FileResponse closes (deletes) it.
    handle = tempfile.TemporaryFile(suffix=".parquet")  # noqa: SIM115
    with pq.ParquetWriter(handle, schema) as writer:
        batch: list[list[Any]] = []
        for row in rows(experiment, traces=traces):
            batch.append(_flat(row, cols))
            if len(batch) == PARQUET_BATCH:
                writer.write_batch(_record_batch(batch, schema))
                batch = []
        if batch:
            writer.write_batch(_record_batch(batch, schema))
    handle.seek(0)
    return handle


def _record_batch(batch: list[list[Any]], schema: pa.Schema) -> pa.RecordBatch:
    arrays = [pa.array([r[i] for r in batch], type=field.type) for i, field in enumerate(schema)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def export_response(experiment, fmt: str, traces: bool):
    """The streamed download (the API and the page share it)."""
    base = f"experiment-{experiment.id}"
    if fmt == "parquet":
        handle = parquet_file(experiment, traces=traces)
        return FileResponse(
            handle, as_attachment=True, filename=f"{base}.parquet", content_type=CONTENT_TYPES["parquet"]
        )
    stream = jsonl_stream if fmt == "jsonl" else csv_stream
    response = StreamingHttpResponse(stream(experiment, traces=traces), content_type=CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'attachment; filename="{base}.{fmt}"'
    return response
