"""Read-side representations of comparisons, runs and outputs (the API's and the CLI's JSON)."""

from rest_framework import serializers

from decodelab.runs import selectors
from decodelab.runs.models import Comparison


class OutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    text = serializers.CharField()
    token_ids = serializers.ListField(child=serializers.IntegerField())
    score = serializers.FloatField(allow_null=True)
    finish_reason = serializers.CharField()
    group = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField(help_text="Strategy-specific measurements (see the README, 'Metrics').")
    trace = serializers.ListField(
        child=serializers.DictField(), allow_null=True, help_text="Per token: id, text, logprob, entropy, top."
    )


class RunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    comparison_id = serializers.UUIDField()
    position = serializers.IntegerField()
    label = serializers.CharField()
    strategy = serializers.CharField()
    params = serializers.DictField()
    seed = serializers.IntegerField()
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    error = serializers.CharField()
    error_field = serializers.CharField()
    worker = serializers.CharField()
    queued_at = serializers.DateTimeField(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    prompt_token_ids = serializers.ListField(child=serializers.IntegerField(), allow_null=True)
    metrics = serializers.DictField(allow_null=True, help_text="Definitions: see the README, 'Metrics'.")
    environment = serializers.DictField(allow_null=True)
    outputs = OutputSerializer(many=True)


class ComparisonSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    prompt = serializers.CharField()
    chat = serializers.BooleanField()
    max_new_tokens = serializers.IntegerField()
    stop = serializers.ListField(child=serializers.CharField())
    model = serializers.CharField()
    created_at = serializers.DateTimeField()
    status = serializers.SerializerMethodField()
    runs = RunSerializer(many=True)

    def get_status(self, obj: Comparison) -> str:
        return selectors.comparison_status(obj)
