"""Comparisons, their runs (one per decoder preset) and the outputs each run produced.

The database, not the broker, is the source of truth for a run's state.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from decodelab.common.models import BaseModel
from workers.reliability import task_id


class Comparison(BaseModel):
    """One prompt decoded under several decoder presets."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comparisons")
    prompt = models.TextField()
    chat = models.BooleanField(default=True, help_text="Wrap the prompt in the model's chat template.")
    max_new_tokens = models.PositiveIntegerField()
    stop = models.JSONField(default=list, blank=True, help_text="Stop strings: an output ends at the first one.")
    model = models.CharField(max_length=64)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prompt[:40]!r} ({self.model})"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class Run(BaseModel):
    """One decoder preset applied to a comparison's prompt, executed by a worker."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="runs")
    position = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=200)
    strategy = models.CharField(max_length=32)
    params = models.JSONField(default=dict, help_text="The full, validated parameters, defaults included.")
    seed = models.PositiveBigIntegerField(default=0)
    sample = models.PositiveSmallIntegerField(default=0, help_text="Sample number within its configuration.")
    config_hash = models.CharField(
        max_length=32,
        db_index=True,
        blank=True,
        help_text="Identity of the decoder configuration (decodelab.catalog.confighash): equal hashes, same config.",
    )

    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Times a worker started the run.")
    dispatches = models.PositiveSmallIntegerField(default=0, help_text="Times the run was sent to the broker.")
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="Last send; null: not yet sent.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    soft_time_limit_s = models.FloatField(null=True, blank=True)
    time_limit_s = models.FloatField(null=True, blank=True, help_text="Hard time limit of the current dispatch.")
    error = models.TextField(blank=True)
    error_field = models.CharField(max_length=100, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    prompt_token_ids = models.JSONField(null=True, blank=True)
    metrics = models.JSONField(null=True, blank=True)
    environment = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["comparison", "position"]
        constraints = [
            models.UniqueConstraint(fields=["comparison", "position"], name="run_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.label} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def task_id(self) -> str:
        """The Celery task id of the current dispatch (also the run's lease in the broker)."""
        return task_id(str(self.id), self.dispatches)


class Output(models.Model):
    """One returned sequence of a run (n-best lists and samples have several)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="outputs")
    index = models.PositiveSmallIntegerField()
    text = models.TextField()
    token_ids = models.JSONField(default=list)
    score = models.FloatField(null=True, blank=True)
    finish_reason = models.CharField(max_length=16)
    group = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Diverse beam search group.")
    metrics = models.JSONField(default=dict, blank=True, help_text="Strategy-specific measurements.")
    trace = models.JSONField(null=True, blank=True, help_text="Per token: id, text, logprob, entropy, top-5...")

    class Meta:
        ordering = ["run", "index"]
        constraints = [
            # A result written twice (a task redelivered after a crash) never duplicates an output.
            models.UniqueConstraint(fields=["run", "index"], name="output_run_index_unique"),
        ]

    def __str__(self) -> str:
        return f"output {self.index} of {self.run_id}"
