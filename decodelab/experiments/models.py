"""Prompt sets, saved decoder presets, sweeps and experiments (prompt set x presets x samples).

An experiment reuses the runs pipeline: one ``runs.Comparison`` per prompt (and per model /
max_new_tokens / chat / stop / seed-policy group), linked here through ``ExperimentComparison``.
The presets an experiment ran with are copied into ``ExperimentConfig`` rows, so editing or
deleting a preset later never changes what an experiment says it ran (runs store their own
params and configuration hash too).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from decodelab.common.models import BaseModel


class SeedPolicy(models.TextChoices):
    # Sample i of a cell uses the experiment's i-th listed seed: samples differ.
    PER_SAMPLE = "per-sample", "A listed seed per sample"
    # Every sample uses the preset's own seed: repeats of one decode (timing spread, determinism).
    FIXED = "fixed", "The preset's seed for every sample"


class PromptSet(BaseModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="prompt_sets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=16, default="manual", help_text="manual, jsonl or csv.")
    filename = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class PromptItem(models.Model):
    """One prompt of a set. Duplicates (the same prompt text as an earlier item) are kept and
    point at the first occurrence, so nothing a researcher uploaded disappears silently."""

    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    external_id = models.CharField(max_length=200, help_text="The upload's id column, or the row number.")
    prompt = models.TextField()
    reference = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    duplicate_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["prompt_set", "position"]
        constraints = [
            models.UniqueConstraint(fields=["prompt_set", "position"], name="prompt_item_position_unique"),
            models.UniqueConstraint(fields=["prompt_set", "external_id"], name="prompt_item_external_id_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.external_id}: {self.prompt[:40]!r}"


class Sweep(BaseModel):
    """Presets made from a base configuration and up to two parameters with value lists."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sweeps")
    name = models.CharField(max_length=200)
    base = models.JSONField(help_text="The base configuration every point starts from.")
    x_param = models.CharField(max_length=64)
    x_values = models.JSONField(default=list)
    y_param = models.CharField(max_length=64, blank=True)
    y_values = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class Preset(BaseModel):
    """A saved decoder configuration. ``config_hash`` is computed exactly as runs compute
    theirs (decodelab.catalog.confighash), so a run made from this preset carries the same hash."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets")
    name = models.CharField(max_length=200)
    strategy = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True, help_text="Validated parameters, defaults filled in.")
    model = models.CharField(max_length=64)
    max_new_tokens = models.PositiveIntegerField(default=64)
    chat = models.BooleanField(default=True)
    stop = models.JSONField(default=list, blank=True)
    seed_policy = models.CharField(max_length=16, choices=SeedPolicy.choices, default=SeedPolicy.PER_SAMPLE)
    seed = models.PositiveBigIntegerField(default=0, help_text="Used by the fixed seed policy.")
    config_hash = models.CharField(max_length=32, db_index=True)
    identity = models.JSONField(default=dict, blank=True, help_text="The canonical configuration that was hashed.")
    cloned_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.SET_NULL, related_name="presets")
    sweep_point = models.JSONField(default=dict, blank=True, help_text="This preset's values of the swept parameters.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.config_hash})"


class Experiment(BaseModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="experiments")
    name = models.CharField(max_length=200)
    # RESTRICT, not PROTECT: a prompt set in use cannot be deleted by itself, but deleting its
    # owner still removes both.
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.RESTRICT, related_name="experiments")
    samples = models.PositiveSmallIntegerField(default=1)
    seeds = models.JSONField(default=list, help_text="Seed of sample i for per-sample presets.")
    skip_duplicates = models.BooleanField(default=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ExperimentConfig(models.Model):
    """The exact configuration an experiment ran (a copy of the preset at submission)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="configs")
    position = models.PositiveSmallIntegerField()
    preset = models.ForeignKey(Preset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    label = models.CharField(max_length=200)
    strategy = models.CharField(max_length=32)
    params = models.JSONField(default=dict, blank=True)
    model = models.CharField(max_length=64)
    max_new_tokens = models.PositiveIntegerField()
    chat = models.BooleanField()
    stop = models.JSONField(default=list, blank=True)
    seed_policy = models.CharField(max_length=16, choices=SeedPolicy.choices)
    seed = models.PositiveBigIntegerField(default=0)
    config_hash = models.CharField(max_length=32)
    identity = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["experiment", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "position"], name="experiment_config_position_unique"),
            models.UniqueConstraint(fields=["experiment", "config_hash"], name="experiment_config_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.config_hash})"


class ExperimentComparison(models.Model):
    """One prompt's comparison within an experiment (several when its presets differ in model,
    max_new_tokens, chat, stop strings or seed policy)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="comparisons")
    item = models.ForeignKey(PromptItem, on_delete=models.CASCADE, related_name="+")
    comparison = models.OneToOneField("runs.Comparison", on_delete=models.CASCADE, related_name="experiment_link")

    class Meta:
        ordering = ["experiment", "item__position"]

    def __str__(self) -> str:
        return f"{self.experiment_id} / {self.item_id}"
