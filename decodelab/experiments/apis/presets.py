"""Presets (saved decoder configurations) and sweeps over the API."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from decodelab.api.pagination import DefaultPagination
from decodelab.common.permissions import IsResearcher
from decodelab.experiments import selectors, services
from decodelab.experiments.models import SeedPolicy
from decodelab.experiments.serializers import PresetSerializer, SweepSerializer
from workers.protocol import MAX_NEW_TOKENS, MAX_SEED, MAX_STOP_CHARS, MAX_STOP_STRINGS
from workers.strategies import STRATEGIES


@extend_schema_serializer(component_name="SavedPresetInput")
class PresetInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, help_text="Default: a label.")
    strategy = serializers.ChoiceField(choices=sorted(STRATEGIES))
    params = serializers.DictField(required=False, default=dict, help_text="GenerationConfig names.")
    model = serializers.CharField(required=False, allow_blank=True, default="")
    max_new_tokens = serializers.IntegerField(required=False, default=64, min_value=1, max_value=MAX_NEW_TOKENS)
    chat = serializers.BooleanField(required=False, default=True)
    stop = serializers.ListField(
        child=serializers.CharField(max_length=MAX_STOP_CHARS, trim_whitespace=False),
        required=False,
        default=list,
        max_length=MAX_STOP_STRINGS,
    )
    seed_policy = serializers.ChoiceField(choices=SeedPolicy.values, required=False, default=SeedPolicy.PER_SAMPLE)
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_SEED)


PRESET_EXAMPLE = OpenApiExample(
    "nucleus sampling",
    value={
        "name": "nucleus 0.9",
        "strategy": "sampling",
        "params": {"temperature": 0.8, "top_p": 0.9},
        "max_new_tokens": 48,
        "chat": True,
        "seed_policy": "per-sample",
    },
    request_only=True,
)
FILTERS = [
    OpenApiParameter("strategy", OpenApiTypes.STR, description="Exact strategy name."),
    OpenApiParameter("model", OpenApiTypes.STR, description="Exact model name."),
    OpenApiParameter("config_hash", OpenApiTypes.STR, description="Presets with this configuration hash."),
    OpenApiParameter("q", OpenApiTypes.STR, description="Name contains (case-insensitive)."),
]


class PresetListCreateApi(APIView):
    permission_classes = [IsResearcher]
    pagination_class = DefaultPagination  # the schema documents the paginated list

    @extend_schema(parameters=FILTERS, responses=PresetSerializer(many=True), operation_id="presets_list")
    def get(self, request):
        q = request.query_params
        qs = selectors.preset_list(
            user=request.user,
            strategy=q.get("strategy", ""),
            model=q.get("model", ""),
            q=q.get("q", ""),
            config_hash=q.get("config_hash", ""),
        )
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(PresetSerializer(page, many=True).data)

    @extend_schema(
        request=PresetInputSerializer,
        responses={201: PresetSerializer},
        examples=[PRESET_EXAMPLE],
        operation_id="presets_create",
    )
    def post(self, request):
        data = PresetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        preset = services.preset_create(owner=request.user, **data.validated_data)
        return Response(PresetSerializer(preset).data, status=status.HTTP_201_CREATED)


class PresetDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=PresetSerializer, operation_id="presets_retrieve")
    def get(self, request, preset_id):
        return Response(PresetSerializer(selectors.preset_get(user=request.user, preset_id=preset_id)).data)

    @extend_schema(
        request=PresetInputSerializer(partial=True),
        responses=PresetSerializer,
        operation_id="presets_update",
        description="Edit in place; the hash is recomputed. `params` replaces the whole parameter set (those "
        "not given take their defaults). Experiments that used the preset keep their own copy "
        "of the configuration and their runs keep theirs, so past results never change.",
        examples=[OpenApiExample("lower temperature", value={"params": {"temperature": 0.5}}, request_only=True)],
    )
    def patch(self, request, preset_id):
        preset = selectors.preset_get(user=request.user, preset_id=preset_id)
        data = PresetInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k in request.data}
        return Response(PresetSerializer(services.preset_update(preset=preset, **changes)).data)

    @extend_schema(responses={204: None}, operation_id="presets_delete")
    def delete(self, request, preset_id):
        services.preset_delete(preset=selectors.preset_get(user=request.user, preset_id=preset_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PresetCloneApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        request=PresetInputSerializer(partial=True),
        responses={201: PresetSerializer},
        operation_id="presets_clone",
        description="A copy of the preset (cloned_from set), with any fields given changed.",
        examples=[
            OpenApiExample("clone with top_k", value={"name": "top-k 20", "params": {"top_k": 20}}, request_only=True)
        ],
    )
    def post(self, request, preset_id):
        preset = selectors.preset_get(user=request.user, preset_id=preset_id)
        data = PresetInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = {k: v for k, v in data.validated_data.items() if k in request.data}
        clone = services.preset_clone(preset=preset, **changes)
        return Response(PresetSerializer(clone).data, status=status.HTTP_201_CREATED)


@extend_schema_serializer(component_name="SweepAxisInput")
class AxisInput(serializers.Serializer):
    param = serializers.CharField(help_text="A numeric, boolean or choice parameter of the base strategy.")
    values = serializers.ListField(child=serializers.JSONField(), help_text="1 to 10 values.")


class SweepListCreateApi(APIView):
    permission_classes = [IsResearcher]
    pagination_class = DefaultPagination  # the schema documents the paginated list

    @extend_schema_serializer(component_name="SweepCreate")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        base_preset = serializers.UUIDField(required=False, help_text="Start from this preset...")
        base = PresetInputSerializer(required=False, help_text="...or from this configuration.")
        x = AxisInput()
        y = AxisInput(required=False, allow_null=True)

        def validate(self, attrs):
            if ("base" in attrs) == ("base_preset" in attrs):
                raise serializers.ValidationError({"base": "give exactly one of base and base_preset"})
            return attrs

    @extend_schema(responses=SweepSerializer(many=True), operation_id="sweeps_list")
    def get(self, request):
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(selectors.sweep_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(SweepSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: SweepSerializer},
        operation_id="sweeps_create",
        description="Make one preset per combination of x values (and y values), at most 25; each is validated "
        "like any preset and the error names the axis and value.",
        examples=[
            OpenApiExample(
                "temperature x top_p",
                value={
                    "base": {"strategy": "sampling", "max_new_tokens": 32},
                    "x": {"param": "temperature", "values": [0.7, 1.0]},
                    "y": {"param": "top_p", "values": [0.9, 1.0]},
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        base_preset = None
        if "base_preset" in v:
            base_preset = selectors.preset_get(user=request.user, preset_id=v["base_preset"])
        base = v.get("base")
        if base is not None:
            base = {k: value for k, value in base.items() if k != "name"}
        sweep = services.sweep_create(
            owner=request.user, base=base, base_preset=base_preset, x=v["x"], y=v.get("y"), name=v["name"]
        )
        sweep = selectors.sweep_get(user=request.user, sweep_id=sweep.id)
        return Response(SweepSerializer(sweep).data, status=status.HTTP_201_CREATED)


class SweepDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=SweepSerializer, operation_id="sweeps_retrieve")
    def get(self, request, sweep_id):
        return Response(SweepSerializer(selectors.sweep_get(user=request.user, sweep_id=sweep_id)).data)
