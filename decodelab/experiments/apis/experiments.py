"""Experiments over the API: create, list, read with progress, cancel, grid, metrics, export,
and the token diff of two outputs."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from decodelab.api.pagination import DefaultPagination
from decodelab.common.errors import ApplicationError
from decodelab.common.permissions import IsResearcher
from decodelab.experiments import exports, selectors, services, tokenviews
from decodelab.experiments.serializers import DiffSerializer, ExperimentSerializer, GridSerializer, MetricsSerializer
from decodelab.experiments.services import MAX_PRESETS_PER_EXPERIMENT, MAX_SAMPLES
from workers.protocol import MAX_SEED


def with_progress(experiment):
    experiment.progress_data = selectors.experiment_progress(experiment)
    return experiment


class ExperimentListCreateApi(APIView):
    permission_classes = [IsResearcher]
    pagination_class = DefaultPagination  # the schema documents the paginated list

    @extend_schema_serializer(component_name="ExperimentCreate")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        prompt_set = serializers.UUIDField()
        presets = serializers.ListField(
            child=serializers.UUIDField(), min_length=1, max_length=MAX_PRESETS_PER_EXPERIMENT
        )
        samples = serializers.IntegerField(required=False, default=1, min_value=1, max_value=MAX_SAMPLES)
        seeds = serializers.ListField(
            child=serializers.IntegerField(min_value=0, max_value=MAX_SEED),
            required=False,
            default=list,
            help_text="Seed of sample i for per-sample presets (default 0, 1, ..., samples - 1).",
        )
        skip_duplicates = serializers.BooleanField(required=False, default=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(selectors.STATUSES)),
            OpenApiParameter("q", OpenApiTypes.STR, description="Name contains (case-insensitive)."),
            OpenApiParameter("prompt_set", OpenApiTypes.UUID),
        ],
        responses=ExperimentSerializer(many=True),
        operation_id="experiments_list",
    )
    def get(self, request):
        q = request.query_params
        status_filter = q.get("status", "")
        if status_filter and status_filter not in selectors.STATUSES:
            raise ApplicationError(f"must be one of {', '.join(selectors.STATUSES)}", field="status")
        qs = selectors.experiment_list(
            user=request.user, status=status_filter, q=q.get("q", ""), prompt_set=q.get("prompt_set", "")
        )
        paginator = DefaultPagination()
        page = paginator.paginate_queryset(qs.prefetch_related("configs"), request, view=self)
        data = ExperimentSerializer([with_progress(e) for e in page], many=True).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        request=InputSerializer,
        responses={201: ExperimentSerializer},
        operation_id="experiments_create",
        description="Runs prompt set x presets x samples. Runs are stored queued and dispatched by the reaper "
        "within seconds (and again after a restart). All or nothing: 429 when the runs-in-flight quota would be "
        "exceeded, 400 naming the field otherwise.",
        examples=[
            OpenApiExample(
                "two presets, 2 samples",
                value={
                    "name": "greedy vs sampling",
                    "prompt_set": "7f9c0e1e-2d7b-4a55-9d3c-0b6b3e3f1a10",
                    "presets": ["0b8f5c2a-1111-4c1e-9d9e-2f1f5c7a9e01", "0b8f5c2a-2222-4c1e-9d9e-2f1f5c7a9e02"],
                    "samples": 2,
                    "seeds": [11, 12],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        prompt_set = selectors.prompt_set_find(user=request.user, prompt_set_id=v["prompt_set"])
        if prompt_set is None:
            raise ApplicationError("no such prompt set", field="prompt_set")
        experiment = services.experiment_create(
            owner=request.user,
            name=v["name"],
            prompt_set=prompt_set,
            presets=selectors.presets_by_ids(user=request.user, ids=v["presets"]),
            samples=v["samples"],
            seeds=v["seeds"],
            skip_duplicates=v["skip_duplicates"],
        )
        experiment = with_progress(selectors.experiment_get(user=request.user, experiment_id=experiment.id))
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=ExperimentSerializer, operation_id="experiments_retrieve")
    def get(self, request, experiment_id):
        experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
        return Response(ExperimentSerializer(with_progress(experiment)).data)


class ExperimentCancelApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(request=None, responses=ExperimentSerializer, operation_id="experiments_cancel")
    def post(self, request, experiment_id):
        experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
        services.experiment_cancel(experiment=experiment)
        experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
        return Response(ExperimentSerializer(with_progress(experiment)).data)


class ExperimentGridApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        parameters=[
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("page_size", OpenApiTypes.INT, description="Prompts per page (at most 100)."),
        ],
        responses=GridSerializer,
        operation_id="experiments_grid",
        description="Prompts x configurations; each cell lists its runs (one per sample) with a preview of "
        "the first output.",
    )
    def get(self, request, experiment_id):
        experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
        paginator = DefaultPagination()
        items = paginator.paginate_queryset(selectors.experiment_items(experiment), request, view=self)
        grid = selectors.experiment_grid(experiment, list(items))
        body = {
            "count": paginator.page.paginator.count,
            "next": paginator.get_next_link(),
            "previous": paginator.get_previous_link(),
            "configs": grid["configs"],
            "rows": grid["rows"],
        }
        return Response(GridSerializer(body).data)


class ExperimentMetricsApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        responses=MetricsSerializer,
        operation_id="experiments_metrics",
        description="Per configuration: median, 25th and 75th percentile across prompts and samples of "
        "tokens/s, time to first token, output length, distinct-1/2 and self-BLEU within a cell, repetition "
        "(seq-rep-2) and mean logprob; empty, non-terminating and validity rates. Definitions: README.",
    )
    def get(self, request, experiment_id):
        experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
        return Response(MetricsSerializer(selectors.experiment_metrics(experiment)).data)


class ExportNegotiation(DefaultContentNegotiation):
    """``?format=`` names the export's file format here, not a DRF renderer: errors stay JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ExperimentExportApi(APIView):
    permission_classes = [IsResearcher]
    content_negotiation_class = ExportNegotiation

    @extend_schema(
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(exports.FORMATS), default="jsonl"),
            OpenApiParameter("traces", OpenApiTypes.BOOL, description="Add each output's token trace (JSON)."),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="JSON lines"),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row"),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY, description="Parquet"),
        },
        operation_id="experiments_export",
        description="One row per output (a run without outputs gets one row): prompt, configuration hash, preset, "
        "strategy, params, seed, sample, model, text, finish reason, score, run metrics, config and environment.",
    )
    def get(self, request, experiment_id):
        experiment = selectors.experiment_get(user=request.user, experiment_id=experiment_id)
        fmt = request.query_params.get("format", "jsonl")
        if fmt not in exports.FORMATS:
            raise ApplicationError(f"must be one of {', '.join(exports.FORMATS)}", field="format")
        return exports.export_response(experiment, fmt, request.query_params.get("traces") in ("1", "true"))


def parse_output_ref(value: str, field: str) -> tuple[str, int]:
    run_id, _, index = (value or "").partition(":")
    if not run_id or not index.isdigit():
        raise ApplicationError("must be RUN_ID:OUTPUT_INDEX", field=field)
    return run_id, int(index)


class OutputDiffApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(
        parameters=[
            OpenApiParameter("a", OpenApiTypes.STR, required=True, description="RUN_ID:OUTPUT_INDEX"),
            OpenApiParameter("b", OpenApiTypes.STR, required=True, description="RUN_ID:OUTPUT_INDEX"),
        ],
        responses=DiffSerializer,
        operation_id="outputs_diff",
        description="Token-aligned diff of any two of your outputs (difflib on token ids) with the first "
        "divergence marked.",
    )
    def get(self, request):
        outs = []
        for side in ("a", "b"):
            run_id, index = parse_output_ref(request.query_params.get(side, ""), side)
            outs.append(selectors.output_get(user=request.user, run_id=run_id, index=index))
        a, b = outs
        a_texts = tokenviews.token_texts(a.token_ids, a.trace)
        diff = tokenviews.token_diff(a.token_ids, a_texts, b.token_ids, tokenviews.token_texts(b.token_ids, b.trace))
        return Response(DiffSerializer(diff).data)
