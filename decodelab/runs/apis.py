"""REST API for comparisons and runs: parse -> call a service or selector -> serialize."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from decodelab.api.pagination import DefaultPagination
from decodelab.common.permissions import IsResearcher
from decodelab.runs import selectors, services
from decodelab.runs.serializers import ComparisonSerializer, RunSerializer
from workers.protocol import MAX_NEW_TOKENS, MAX_PROMPT_CHARS, MAX_SEED, MAX_STOP_CHARS, MAX_STOP_STRINGS
from workers.strategies import STRATEGIES


class PresetInputSerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=sorted(STRATEGIES))
    params = serializers.DictField(required=False, default=dict, help_text="GenerationConfig names, e.g. num_beams.")
    seed = serializers.IntegerField(required=False, default=0, min_value=0, max_value=MAX_SEED)
    label = serializers.CharField(required=False, max_length=200)


class ComparisonCreateInput(serializers.Serializer):
    prompt = serializers.CharField(max_length=MAX_PROMPT_CHARS, trim_whitespace=False)
    chat = serializers.BooleanField(required=False, default=True)
    max_new_tokens = serializers.IntegerField(required=False, default=64, min_value=1, max_value=MAX_NEW_TOKENS)
    model = serializers.CharField(required=False, allow_blank=True, default="")
    stop = serializers.ListField(
        child=serializers.CharField(max_length=MAX_STOP_CHARS, trim_whitespace=False),
        required=False,
        default=list,
        max_length=MAX_STOP_STRINGS,
        help_text="Stop strings: an output ends at the first one (finish_reason 'stop').",
    )
    presets = PresetInputSerializer(many=True)

    def validate_prompt(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("must not be empty")
        return value


CREATE_EXAMPLE = OpenApiExample(
    "greedy vs beam",
    value={
        "prompt": "The capital of France is",
        "chat": False,
        "max_new_tokens": 32,
        "presets": [
            {"strategy": "greedy"},
            {"strategy": "beam", "params": {"num_beams": 4, "num_return_sequences": 2}},
            {"strategy": "sampling", "params": {"temperature": 0.7, "top_p": 0.9}, "seed": 1},
        ],
    },
    request_only=True,
)


class ComparisonListCreateApi(APIView):
    permission_classes = [IsResearcher]
    pagination_class = DefaultPagination  # so the schema documents the paginated list (and its page params)

    @extend_schema(responses=ComparisonSerializer(many=True), operation_id="comparisons_list")
    def get(self, request):
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(selectors.comparison_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(ComparisonSerializer(page, many=True).data)

    @extend_schema(
        request=ComparisonCreateInput,
        responses={201: ComparisonSerializer},
        examples=[CREATE_EXAMPLE],
        operation_id="comparisons_create",
    )
    def post(self, request):
        data = ComparisonCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        comparison = services.comparison_create(owner=request.user, **data.validated_data)
        comparison = selectors.comparison_get(user=request.user, comparison_id=comparison.id)
        return Response(ComparisonSerializer(comparison).data, status=status.HTTP_201_CREATED)


class ComparisonDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=ComparisonSerializer, operation_id="comparisons_retrieve")
    def get(self, request, comparison_id):
        return Response(
            ComparisonSerializer(selectors.comparison_get(user=request.user, comparison_id=comparison_id)).data
        )


class ComparisonProgressSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["queued", "running", "finished", "failed", "cancelled"])
    runs = serializers.DictField(child=serializers.IntegerField(), help_text="Runs per status.")
    total = serializers.IntegerField()
    finished = serializers.BooleanField(help_text="No run is queued or running any more.")


class ComparisonStatusApi(APIView):
    """A small answer for frequent polling: the comparison's status and its runs per status."""

    permission_classes = [IsResearcher]

    @extend_schema(responses=ComparisonProgressSerializer, operation_id="comparisons_status")
    def get(self, request, comparison_id):
        progress = selectors.comparison_progress(user=request.user, comparison_id=comparison_id)
        return Response(ComparisonProgressSerializer(progress).data)


class RunDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=RunSerializer, operation_id="runs_retrieve")
    def get(self, request, run_id):
        return Response(RunSerializer(selectors.run_get(user=request.user, run_id=run_id)).data)


class ComparisonCancelApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses=ComparisonSerializer, operation_id="comparisons_cancel")
    def post(self, request, comparison_id):
        comparison = selectors.comparison_get(user=request.user, comparison_id=comparison_id)
        services.runs_cancel(runs=list(comparison.runs.all()))
        comparison = selectors.comparison_get(user=request.user, comparison_id=comparison_id)
        return Response(ComparisonSerializer(comparison).data)


class RunCancelApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses=RunSerializer, operation_id="runs_cancel")
    def post(self, request, run_id):
        run = selectors.run_get(user=request.user, run_id=run_id)
        services.runs_cancel(runs=[run])
        return Response(RunSerializer(selectors.run_get(user=request.user, run_id=run_id)).data)
