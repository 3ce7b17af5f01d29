"""Representations. Annotator-facing ones are allow-lists built from plain dicts made here, so a new
model field can never reach an annotator by accident; researcher-facing ones may show everything."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from decodelab.ratings import selectors
from decodelab.ratings.models import Assignment, Choice, Mode, RatingSession, SessionStatus

# --- annotator side (blind) ---


class BlindOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Opaque id of this output within the item.")
    text = serializers.CharField()


class RatingProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    skipped = serializers.IntegerField()
    pending = serializers.IntegerField()
    total = serializers.IntegerField()


class BlindItemSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Opaque id of this item in your queue.")
    task = serializers.CharField(help_text="Opaque id of the rating task.")
    mode = serializers.ChoiceField(choices=Mode.choices)
    prompt = serializers.CharField()
    outputs = BlindOutputSerializer(many=True, help_text="In the order to show them: left to right.")
    criteria = serializers.ListField(child=serializers.CharField(), help_text="Likert criteria (1-5 each).")
    instructions = serializers.CharField()
    answered = serializers.BooleanField()


class NextRatingItemSerializer(serializers.Serializer):
    item = BlindItemSerializer(allow_null=True, help_text="null: nothing left to rate in this task.")
    progress = RatingProgressSerializer()


class RatingTaskSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Opaque id of the rating task.")
    mode = serializers.ChoiceField(choices=Mode.choices)
    instructions = serializers.CharField()
    progress = RatingProgressSerializer()


class RatingRevealSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The output's opaque id.")
    side = serializers.CharField(help_text="Where it was shown: left, right, or its position 1..k.")
    label = serializers.CharField(help_text="The configuration that produced it.")
    config_hash = serializers.CharField()
    cost_ms_per_token = serializers.FloatField(allow_null=True)


class RatingVoteInputSerializer(serializers.Serializer):
    choice = serializers.ChoiceField(choices=Choice.choices, required=False, help_text="Pairwise sessions.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    scores = serializers.DictField(
        child=serializers.IntegerField(min_value=1, max_value=5), required=False, help_text="Likert: {criterion: 1-5}"
    )
    ranking = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Ranking: output ids, best first."
    )


class RatingVoteResultSerializer(serializers.Serializer):
    item = serializers.CharField()
    recorded = serializers.BooleanField()
    reveal = RatingRevealSerializer(many=True, allow_null=True, help_text="Only when the session reveals after voting.")


def blind_item(assignment: Assignment) -> dict[str, Any]:
    """The whole of what an annotator learns about an item: texts in the stored order, opaque ids."""
    item, session = assignment.item, assignment.item.session
    by_id = selectors.item_candidates(item=item)
    return {
        "id": assignment.public_id,
        "task": session.public_id,
        "mode": session.mode,
        "prompt": item.prompt,
        "outputs": [{"id": pid, "text": by_id[pid].text} for pid in assignment.shown_order],
        "criteria": list(session.criteria),
        "instructions": session.instructions,
        "answered": assignment.status != "pending",
    }


def reveal(assignment: Assignment) -> list[dict[str, Any]] | None:
    """After a vote, and only if the session allows it: which configuration made each output."""
    if not assignment.item.session.reveal_after_vote or assignment.status != "done":
        return None
    by_id = selectors.item_candidates(item=assignment.item)
    order = assignment.shown_order
    sides = ["left", "right"] if len(order) == 2 else [str(i + 1) for i in range(len(order))]
    out = []
    for side, pid in zip(sides, order, strict=True):
        c = by_id[pid]
        gold = assignment.item.gold
        out.append(
            {
                "id": pid,
                "side": side,
                "label": "gold check" if gold else c.label,
                "config_hash": "" if gold else c.config_hash,
                "cost_ms_per_token": c.cost_ms_per_token,
            }
        )
    return out


# --- researcher side ---


class RatingGoldInputSerializer(serializers.Serializer):
    prompt = serializers.CharField()
    outputs = serializers.ListField(child=serializers.CharField(trim_whitespace=False), min_length=1, max_length=9)
    expected = serializers.JSONField(
        help_text="Pairwise: 0 or 1 (the better output), 'tie' or 'both_bad'; Likert: {criterion: 1-5} "
        "(right within one point); ranking: output indexes best first (right when the best is first)."
    )


class RatingSessionCreateInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    mode = serializers.ChoiceField(choices=Mode.choices)
    comparisons = serializers.ListField(child=serializers.UUIDField(), required=False, default=list)
    experiment = serializers.UUIDField(
        required=False, allow_null=True, help_text="Rate every comparison of this experiment (adds to comparisons)."
    )
    annotators = serializers.ListField(child=serializers.CharField(), help_text="Usernames with the annotator role.")
    overlap = serializers.IntegerField(min_value=1, default=1, help_text="Annotators per item.")
    criteria = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    ranking_k = serializers.IntegerField(min_value=2, max_value=9, default=3)
    instructions = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)
    active = serializers.BooleanField(default=False, help_text="Pairwise: draw the pair whose CIs overlap most.")
    reveal_after_vote = serializers.BooleanField(default=False)
    gold = RatingGoldInputSerializer(many=True, required=False, default=list)


class RatingSessionStatusInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=SessionStatus.choices)


class RatingAnnotatorProgressSerializer(RatingProgressSerializer):
    annotator = serializers.CharField()


class RatingSessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    mode = serializers.CharField()
    criteria = serializers.ListField(child=serializers.CharField())
    ranking_k = serializers.IntegerField()
    overlap = serializers.IntegerField()
    instructions = serializers.CharField()
    active = serializers.BooleanField()
    reveal_after_vote = serializers.BooleanField()
    status = serializers.CharField()
    experiment_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    comparisons = serializers.SerializerMethodField()
    summary = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()

    def get_comparisons(self, obj: RatingSession) -> list[str]:
        return [str(pk) for pk in obj.comparisons.values_list("id", flat=True)]

    def get_summary(self, obj: RatingSession) -> dict[str, int]:
        return selectors.session_summary(session=obj)

    def get_progress(self, obj: RatingSession) -> list[dict]:
        return RatingAnnotatorProgressSerializer(selectors.session_progress(session=obj), many=True).data


class RatingRankingsSerializer(serializers.Serializer):
    """The statistics of a session; every block is {"result": ...} or {"error": "why it could not be computed"}."""

    mode = serializers.CharField()
    ci_level = serializers.FloatField()
    n_bootstrap = serializers.IntegerField()
    n_bootstrap_length_controlled = serializers.IntegerField()
    n_votes = serializers.IntegerField()
    n_gold_votes = serializers.IntegerField()
    configs = serializers.ListField(child=serializers.DictField(), help_text="config, label, cost_ms_per_token")
    bradley_terry = serializers.JSONField(required=False, help_text="Davidson ties, bootstrap percentile CIs.")
    length_controlled = serializers.JSONField(required=False)
    elo = serializers.JSONField(required=False)
    matrix = serializers.JSONField(required=False, help_text="wins[i][j]: i preferred to j; ties; both_bad.")
    agreement = serializers.JSONField(required=False, help_text="krippendorff_alpha, cohen_kappa, fleiss_kappa")
    position_bias = serializers.JSONField(required=False)
    likert = serializers.JSONField(required=False)
    gold_accuracy = serializers.JSONField()
    quality_cost = serializers.JSONField(help_text="score with CI against ms per token, on_frontier (Pareto).")
