"""Blind rating sessions: items drawn from comparisons, assignments to annotators, votes.

Blinding lives in the data model: everything an annotator is shown or sends back is keyed by
opaque random ids (``public_id``), never by a run, output or configuration id, and the texts
an annotator reads are copied onto the item's candidates at the time the item is made.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models

from decodelab.common.models import BaseModel

PUBLIC_ID_BYTES = 12  # 16 URL-safe characters


def new_public_id() -> str:
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


class Mode(models.TextChoices):
    PAIRWISE = "pairwise", "Pairwise (A / B / tie / both bad)"
    LIKERT = "likert", "Likert (1-5 per criterion)"
    RANKING = "ranking", "Ranking of k outputs"


class SessionStatus(models.TextChoices):
    OPEN = "open", "Open"
    # Active sessions stop by themselves once the configurations' intervals separate.
    STOPPED = "stopped", "Stopped (intervals separated)"
    CLOSED = "closed", "Closed"


class RatingSession(BaseModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rating_sessions")
    name = models.CharField(max_length=200, help_text="Seen by researchers only.")
    mode = models.CharField(max_length=16, choices=Mode.choices)
    criteria = models.JSONField(default=list, blank=True, help_text="Likert criteria, e.g. fluency, relevance.")
    ranking_k = models.PositiveSmallIntegerField(default=3, help_text="Outputs per ranking item.")
    overlap = models.PositiveSmallIntegerField(default=1, help_text="Annotators per item.")
    instructions = models.TextField(blank=True, help_text="Shown to annotators.")
    active = models.BooleanField(default=False, help_text="Draw the pair whose intervals overlap most (pairwise).")
    reveal_after_vote = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.OPEN)
    comparisons = models.ManyToManyField("runs.Comparison", through="SessionComparison", related_name="rating_sessions")
    experiment_id = models.UUIDField(null=True, blank=True, help_text="The experiment it was built from, if any.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.mode})"


class SessionComparison(models.Model):
    """A comparison in a session; ``itemized`` once its prompt's items were made (all runs finished)."""

    session = models.ForeignKey(RatingSession, on_delete=models.CASCADE, related_name="comparison_links")
    comparison = models.ForeignKey("runs.Comparison", on_delete=models.CASCADE, related_name="+")
    itemized = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "comparison"], name="session_comparison_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.comparison_id} in {self.session_id}"


class SessionAnnotator(models.Model):
    session = models.ForeignKey(RatingSession, on_delete=models.CASCADE, related_name="annotator_links")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="rating_links")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "annotator"], name="session_annotator_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} in {self.session_id}"


class Item(BaseModel):
    """One thing to rate: a pair (pairwise), one output (Likert) or k outputs (ranking) of one prompt.

    A prompt is its text: comparisons of the same text (an experiment splits a prompt by model)
    pool their configurations, so configurations on different models are compared too.
    """

    session = models.ForeignKey(RatingSession, on_delete=models.CASCADE, related_name="items")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    comparison = models.ForeignKey(
        "runs.Comparison", null=True, blank=True, on_delete=models.CASCADE, related_name="rating_items"
    )
    # Makes item creation idempotent: prompt digest plus the sorted configuration hashes, or gold:<n>.
    key = models.CharField(max_length=200)
    prompt = models.TextField()
    gold = models.BooleanField(default=False)
    expected = models.JSONField(
        null=True, blank=True, help_text="Gold answer: pairwise 0/1/tie/both_bad; likert {criterion: value}; ranking."
    )

    class Meta:
        ordering = ["session", "created_at"]
        constraints = [models.UniqueConstraint(fields=["session", "key"], name="item_session_key_unique")]

    def __str__(self) -> str:
        return f"item {self.public_id}"


class Candidate(models.Model):
    """One output inside an item; ``position`` is the canonical order (not the order shown)."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="candidates")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    position = models.PositiveSmallIntegerField()
    output = models.ForeignKey("runs.Output", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    run_id = models.UUIDField(null=True, blank=True, help_text="Provenance: the run that produced the output.")
    config_hash = models.CharField(max_length=64, blank=True)
    label = models.CharField(max_length=200, blank=True)
    text = models.TextField()
    # Copied from the run for researchers' statistics (length control, cost); never shown to annotators.
    n_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_ms_per_token = models.FloatField(null=True, blank=True, help_text="decode_ms / max(new_tokens - 1, 1)")

    class Meta:
        ordering = ["item", "position"]
        constraints = [models.UniqueConstraint(fields=["item", "position"], name="candidate_position_unique")]

    def __str__(self) -> str:
        return f"candidate {self.position} of item {self.item_id}"


class AssignmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    SKIPPED = "skipped", "Skipped"


class Assignment(BaseModel):
    """An item in one annotator's queue, with the order its outputs are shown in (random, stored)."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="assignments")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    shown_order = models.JSONField(help_text="Candidate public ids, left to right.")
    order_key = models.CharField(max_length=32, default=new_public_id, help_text="Random queue order.")
    status = models.CharField(
        max_length=16, choices=AssignmentStatus.choices, default=AssignmentStatus.PENDING, db_index=True
    )
    shown_at = models.DateTimeField(null=True, blank=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["annotator", "order_key"]
        constraints = [models.UniqueConstraint(fields=["item", "annotator"], name="assignment_item_annotator_unique")]

    def __str__(self) -> str:
        return f"assignment {self.public_id} [{self.status}]"


class Choice(models.TextChoices):
    LEFT = "left", "Left is better"
    RIGHT = "right", "Right is better"
    TIE = "tie", "Tie"
    BOTH_BAD = "both_bad", "Both bad"


class Vote(models.Model):
    """The answer to one assignment. One-to-one: the database refuses a second vote."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="vote")
    choice = models.CharField(max_length=16, choices=Choice.choices, blank=True, help_text="Pairwise only.")
    reason = models.TextField(blank=True)
    ranking = models.JSONField(null=True, blank=True, help_text="Ranking mode: candidate public ids, best first.")
    shown_order = models.JSONField(help_text="Candidate public ids as shown, left to right (copied at voting).")
    shown_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"vote on {self.assignment_id}"


class LikertScore(models.Model):
    vote = models.ForeignKey(Vote, on_delete=models.CASCADE, related_name="scores")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="scores")
    criterion = models.CharField(max_length=64)
    value = models.PositiveSmallIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["vote", "candidate", "criterion"], name="likert_score_unique"),
            models.CheckConstraint(condition=models.Q(value__gte=1, value__lte=5), name="likert_value_1_to_5"),
        ]

    def __str__(self) -> str:
        return f"{self.criterion}={self.value}"
