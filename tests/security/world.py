"""The users and objects the security tests walk over.

Researcher A owns a comparison with a succeeded run (outputs, traces, metrics), a failed run and
a queued run, made through the runs services. Researcher B owns a comparison of their own. The
annotator owns nothing. Every other decodelab model (experiments, ratings, and whatever apps add
later) gets one row owned by A when a generic factory can build it: user foreign keys point at A,
other foreign keys at A's rows. Only rows that reach A through their foreign keys count as A's;
their ids fill URL parameters.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model
from django.db import DatabaseError, models, transaction
from django.utils import timezone

from decodelab.runs import services
from decodelab.runs.models import Comparison, Output, Run
from decodelab.users.models import Role
from decodelab.users.services import NewUser, user_create

SECRET_MARK = "walk-secret-4f1c"  # in A's prompt and outputs: must never reach another user


@dataclass
class World:
    owner: NewUser
    foreign: NewUser
    annotator: NewUser
    comparison: Comparison
    runs: list[Run]
    foreign_comparison: Comparison
    # model label -> A's rows of that model (runs app and generic ones)
    owned: dict[str, list[models.Model]] = field(default_factory=dict)
    skipped_models: dict[str, str] = field(default_factory=dict)  # label -> why no row was made

    def owned_ids(self) -> list[tuple[str, Any]]:
        return [(label, obj.pk) for label, objs in self.owned.items() for obj in objs]

    def secret_strings(self) -> set[str]:
        """Strings that identify A's data: UUIDs and opaque public ids of A's rows, and the mark
        in A's texts."""
        from tests.security.urlwalk import object_ids

        ids = {
            str(v)
            for objs in self.owned.values()
            for obj in objs
            for v in object_ids(obj)
            if isinstance(v, uuid.UUID) or (isinstance(v, str) and len(v) >= 12)
        }
        return ids | {SECRET_MARK}


def trace(text: str) -> list[dict[str, Any]]:
    return [
        {"id": 1, "text": text, "logprob": -0.5, "entropy": 1.0, "top": [[1, text, -0.5], [2, "b", -1.2]]},
        {"id": 2, "text": " end", "logprob": -0.1, "entropy": 0.2, "top": [[2, " end", -0.1]]},
    ]


def make_world(
    *, text: str = f"output {SECRET_MARK}", prompt: str = f"prompt {SECRET_MARK}", annotator_rows: bool = False
) -> World:
    """``annotator_rows``: the generic rows' foreign keys named ``annotator`` point at the
    annotator (so rating pages show them A's outputs) and nullable foreign keys are filled too;
    the URL walk leaves them off, so the annotator is a stranger to every row of A's."""
    owner = user_create(username="walk-owner", role=Role.RESEARCHER)
    foreign = user_create(username="walk-foreign", role=Role.RESEARCHER)
    annotator = user_create(username="walk-annotator", role=Role.ANNOTATOR)

    comparison = services.comparison_create(
        owner=owner.user,
        prompt=prompt,
        chat=False,
        max_new_tokens=8,
        presets=[
            {"strategy": "greedy", "label": f"greedy {text}"},
            {"strategy": "beam", "params": {"num_beams": 2, "num_return_sequences": 2}},
            {"strategy": "sampling", "params": {"temperature": 0.7}},
        ],
        stop=[text[:64]],
    )
    runs = list(comparison.runs.order_by("position"))
    services.run_store_result(
        result={
            "run_id": str(runs[0].id),
            "attempt": 1,
            "outputs": [
                {
                    "index": 0,
                    "text": text,
                    "token_ids": [1, 2],
                    "finish_reason": "length",
                    "score": None,
                    "metrics": {"constraint": text, "compile_ms": 1.5},
                    "trace": trace(text),
                }
            ],
            "prompt_token_ids": [1],
        }
    )
    services.run_store_result(
        result={"run_id": str(runs[1].id), "attempt": 1, "error": f"failed: {text}", "error_field": "params.x"}
    )
    foreign_comparison = services.comparison_create(
        owner=foreign.user, prompt="the foreign researcher's prompt", presets=[{"strategy": "greedy"}]
    )
    world = World(
        owner=owner,
        foreign=foreign,
        annotator=annotator,
        comparison=comparison,
        runs=[Run.objects.get(pk=r.pk) for r in runs],
        foreign_comparison=foreign_comparison,
    )
    world.owned = {
        "runs.comparison": [comparison],
        "runs.run": list(world.runs),
        "runs.output": list(Output.objects.filter(run__comparison=comparison)),
        "users.user": [owner.user],
    }
    GenericFactory(world, text=text, annotator_rows=annotator_rows).fill()
    return world


class GenericFactory:
    """One row of every other decodelab model, owned by A, built from the model's fields."""

    def __init__(self, world: World, *, text: str, annotator_rows: bool = False) -> None:
        self.world = world
        self.text = text
        self.annotator_rows = annotator_rows
        self.user_model = get_user_model()
        self.made: dict[type[models.Model], models.Model | None] = {}
        for label, objs in world.owned.items():
            self.made[apps.get_model(label)] = objs[0]

    def fill(self) -> None:
        for model in apps.get_models():
            if model.__module__.startswith("decodelab.") and model not in self.made:
                self.ensure(model, depth=0)

    def ensure(self, model: type[models.Model], depth: int) -> models.Model | None:
        if model in self.made:
            return self.made[model]
        label = model._meta.label_lower
        if model._meta.abstract or model._meta.proxy or not model._meta.managed or depth > 8:
            self.made[model] = None
            self.world.skipped_models[label] = "abstract, proxy, unmanaged or too deep"
            return None
        self.made[model] = None  # breaks cycles
        values: dict[str, Any] = {}
        owned = False
        for f in model._meta.concrete_fields:
            if f.primary_key and (f.has_default() or isinstance(f, models.AutoField)):
                continue
            if f.is_relation:
                target = f.related_model
                if target is self.user_model:
                    if self.annotator_rows and "annotator" in f.name:
                        values[f.name] = self.world.annotator.user
                    else:
                        values[f.name] = self.world.owner.user
                        owned = True
                    continue
                if f.null and not self.annotator_rows:
                    continue
                obj = self.ensure(target, depth + 1)
                if obj is None and f.null:
                    continue
                if obj is None:
                    self.world.skipped_models[label] = f"needs a {target._meta.label_lower}"
                    return None
                values[f.name] = obj
                owned = owned or target._meta.label_lower in self.world.owned
                continue
            if f.has_default() or f.null:
                continue
            value = sample_value(f, self.text)
            if value is None:
                self.world.skipped_models[label] = f"cannot fill {type(f).__name__} {f.name}"
                return None
            values[f.name] = value
        try:
            with transaction.atomic():
                obj = model.objects.create(**values)
        except (DatabaseError, ValueError, TypeError) as exc:  # e.g. the app's migration is not written yet
            self.world.skipped_models[label] = f"{type(exc).__name__}: {exc}"[:200]
            return None
        self.made[model] = obj
        if owned:
            self.world.owned.setdefault(label, []).append(obj)
        else:
            self.world.skipped_models[label] = "made, but not owned by anyone (not used for URLs)"
        return obj


def sample_value(f: models.Field, text: str) -> Any:
    if f.choices:
        return f.choices[0][0]
    if isinstance(f, models.EmailField):
        return "walk@example.org"
    if isinstance(f, models.URLField):
        return "https://example.org/"
    if isinstance(f, models.GenericIPAddressField):
        return "127.0.0.1"
    if isinstance(f, models.SlugField):
        return "walk"
    if isinstance(f, (models.CharField, models.TextField)):
        return text[: f.max_length] if f.max_length else text
    if isinstance(f, models.BooleanField):
        return False
    if isinstance(f, models.IntegerField):  # every integer kind, positive ones included
        return 1
    if isinstance(f, models.FloatField):
        return 0.5
    if isinstance(f, models.DecimalField):
        return decimal.Decimal("1")
    if isinstance(f, models.DateTimeField):
        return timezone.now()
    if isinstance(f, models.DateField):
        return dt.date.today()
    if isinstance(f, models.DurationField):
        return dt.timedelta(seconds=1)
    if isinstance(f, models.UUIDField):
        return uuid.uuid4()
    if isinstance(f, models.JSONField):
        return {}
    if isinstance(f, models.BinaryField):
        return b""
    return None


def rating_session(world: World, *, text: str) -> str:
    """A pairwise rating session over A's comparison with the annotator, made through the ratings
    app's services (so its item, task and vote pages show the annotator A's outputs); its rows
    go first in A's rows so the walk's URLs name them. Returns what happened, for the report."""
    try:
        from decodelab.ratings import services as ratings
    except ImportError as exc:
        return f"no ratings services: {exc}"
    # A second comparison of A's whose runs have all finished: items are made from finished ones.
    rated = services.comparison_create(
        owner=world.owner.user,
        prompt=text,
        chat=False,
        presets=[{"strategy": "greedy"}, {"strategy": "sampling", "params": {"temperature": 0.5}}],
    )
    for n, run in enumerate(rated.runs.order_by("position")):
        services.run_store_result(
            result={
                "run_id": str(run.id),
                "attempt": 1,
                "outputs": [
                    {"index": 0, "text": f"{text} {n}", "token_ids": [3], "finish_reason": "length", "score": None}
                ],
                "prompt_token_ids": [1],
            }
        )
    try:
        session = ratings.session_create(
            owner=world.owner.user,
            name=text[:100],
            mode="pairwise",
            comparison_ids=[rated.id],
            annotators=[world.annotator.user.username],
            instructions=text,
        )
    except Exception as exc:  # the ratings app's API changed: report it, keep the generic rows
        return f"session_create failed: {type(exc).__name__}: {exc}"
    for obj in [session, *session.items.all()]:
        label = obj._meta.label_lower
        world.owned[label] = [obj, *world.owned.get(label, [])]
    for model_name, rows in (("assignment", "assignments"), ("candidate", "candidates")):
        found = [row for item in session.items.all() for row in getattr(item, rows).all()]
        if found:
            label = f"ratings.{model_name}"
            world.owned[label] = [*found, *world.owned.get(label, [])]
    return f"session with {session.items.count()} items"
