"""Read-side representations of the workbench (the API's JSON). Inputs are parsed by the
InputSerializer nested in each API view."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class PromptItemSerializer(serializers.Serializer):
    item_id = serializers.IntegerField(source="pk")
    id = serializers.CharField(source="external_id", help_text="The upload's id, or its line / position.")
    position = serializers.IntegerField()
    prompt = serializers.CharField()
    reference = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    duplicate_of = serializers.SerializerMethodField(help_text="id of the first item with the same prompt, or null.")

    def get_duplicate_of(self, obj) -> str | None:
        return obj.duplicate_of.external_id if obj.duplicate_of_id else None


class PromptSetSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    source = serializers.CharField(help_text="manual, jsonl or csv")
    filename = serializers.CharField()
    item_count = serializers.IntegerField()
    duplicate_count = serializers.IntegerField(help_text="Items whose prompt repeats an earlier item's.")
    created_at = serializers.DateTimeField()


class PromptSetDetailSerializer(PromptSetSerializer):
    items = PromptItemSerializer(many=True)


class PresetSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    strategy = serializers.CharField()
    params = serializers.DictField(help_text="Every parameter, defaults filled in.")
    model = serializers.CharField()
    max_new_tokens = serializers.IntegerField()
    chat = serializers.BooleanField()
    stop = serializers.ListField(child=serializers.CharField())
    seed_policy = serializers.CharField()
    seed = serializers.IntegerField()
    config_hash = serializers.CharField(help_text="Equal for every run made from this configuration.")
    identity = serializers.DictField(help_text="The canonical configuration that was hashed.")
    cloned_from = serializers.UUIDField(source="cloned_from_id", allow_null=True)
    sweep = serializers.UUIDField(source="sweep_id", allow_null=True)
    sweep_point = serializers.DictField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class AxisSerializer(serializers.Serializer):
    param = serializers.CharField()
    values = serializers.ListField(child=serializers.JSONField())


class SweepSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    base = serializers.DictField()
    x = serializers.SerializerMethodField()
    y = serializers.SerializerMethodField()
    presets = PresetSerializer(many=True, source="presets.all")
    created_at = serializers.DateTimeField()

    @extend_schema_field(AxisSerializer)
    def get_x(self, obj) -> dict:
        return {"param": obj.x_param, "values": obj.x_values}

    @extend_schema_field(AxisSerializer(allow_null=True))
    def get_y(self, obj) -> dict | None:
        return {"param": obj.y_param, "values": obj.y_values} if obj.y_param else None


class ExperimentConfigSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    preset = serializers.UUIDField(source="preset_id", allow_null=True)
    label = serializers.CharField()
    strategy = serializers.CharField()
    params = serializers.DictField()
    model = serializers.CharField()
    max_new_tokens = serializers.IntegerField()
    chat = serializers.BooleanField()
    stop = serializers.ListField(child=serializers.CharField())
    seed_policy = serializers.CharField()
    seed = serializers.IntegerField()
    config_hash = serializers.CharField()
    identity = serializers.DictField()


class ProgressSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="queued, running, finished or cancelled")
    total = serializers.IntegerField()
    finished = serializers.IntegerField(help_text="succeeded + failed + cancelled")
    percent = serializers.FloatField()
    queued = serializers.IntegerField()
    running = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    eta_s = serializers.FloatField(
        allow_null=True,
        help_text="Mean duration of succeeded runs x unfinished runs / workers seen in the last 10 minutes.",
    )
    mean_run_s = serializers.FloatField(allow_null=True)
    workers = serializers.IntegerField()
    done = serializers.BooleanField()


class PromptSetRefSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class ExperimentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    prompt_set = PromptSetRefSerializer()
    samples = serializers.IntegerField()
    seeds = serializers.ListField(child=serializers.IntegerField())
    skip_duplicates = serializers.BooleanField()
    cancelled_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    configs = ExperimentConfigSerializer(many=True, source="configs.all")
    progress = ProgressSerializer(source="progress_data")


class GridRunSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    sample = serializers.IntegerField()
    seed = serializers.IntegerField()
    status = serializers.CharField()
    error = serializers.CharField()
    preview = serializers.CharField(help_text="The first output's first 140 characters, trimmed.")
    truncated = serializers.BooleanField()
    finish_reason = serializers.CharField()


class GridCellSerializer(serializers.Serializer):
    config_hash = serializers.CharField(source="config.config_hash")
    runs = GridRunSerializer(many=True)


class GridRowSerializer(serializers.Serializer):
    item = PromptItemSerializer()
    cells = GridCellSerializer(many=True)


class GridSerializer(serializers.Serializer):
    count = serializers.IntegerField(help_text="Prompts in the experiment (rows are paginated).")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    configs = ExperimentConfigSerializer(many=True, help_text="The columns, in preset order.")
    rows = GridRowSerializer(many=True, help_text="One per prompt; cells in the order of configs.")


class SummarySerializer(serializers.Serializer):
    median = serializers.FloatField(allow_null=True)
    p25 = serializers.FloatField(allow_null=True)
    p75 = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()


class RunCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    succeeded = serializers.IntegerField()
    failed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    unfinished = serializers.IntegerField()


class ConfigurationMetricsSerializer(serializers.Serializer):
    config_hash = serializers.CharField()
    label = serializers.CharField()
    strategy = serializers.CharField()
    model = serializers.CharField()
    runs = RunCountsSerializer()
    outputs = serializers.IntegerField()
    tokens_per_s = SummarySerializer()
    ttft_ms = SummarySerializer(help_text="Time to first token (prefill_ms).")
    output_tokens = SummarySerializer()
    distinct_1 = SummarySerializer()
    distinct_2 = SummarySerializer()
    self_bleu = SummarySerializer()
    repetition = SummarySerializer(help_text="seq-rep-2: share of an output's bigrams that repeat.")
    mean_logprob = SummarySerializer()
    empty_rate = serializers.FloatField(allow_null=True)
    nonterminating_rate = serializers.FloatField(allow_null=True, help_text="finish_reason 'length'.")
    validity_rate = serializers.FloatField(allow_null=True, help_text="Constrained runs only.")
    quality = serializers.FloatField(allow_null=True, help_text="Human rating score; null until rated.")


class EnvironmentSerializer(serializers.Serializer):
    mismatch = serializers.BooleanField(help_text="Runs were made on different devices, dtypes or versions.")
    environments = serializers.ListField(child=serializers.DictField())


class MetricsSerializer(serializers.Serializer):
    configurations = ConfigurationMetricsSerializer(many=True)
    environment = EnvironmentSerializer()


class DiffTokenSerializer(serializers.Serializer):
    text = serializers.CharField()
    index = serializers.IntegerField()
    op = serializers.CharField(help_text="equal, replace, delete or insert")
    first = serializers.BooleanField(help_text="The first divergence.")


class DiffBlockSerializer(serializers.Serializer):
    op = serializers.CharField()
    a = serializers.CharField()
    b = serializers.CharField()
    a_range = serializers.ListField(child=serializers.IntegerField())
    b_range = serializers.ListField(child=serializers.IntegerField())


class DiffSerializer(serializers.Serializer):
    a = DiffTokenSerializer(many=True)
    b = DiffTokenSerializer(many=True)
    blocks = DiffBlockSerializer(many=True)
    first_divergence = serializers.IntegerField(allow_null=True)
    identical = serializers.BooleanField()
    common_tokens = serializers.IntegerField()
    similarity = serializers.FloatField()
