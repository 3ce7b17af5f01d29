"""Prompt sets over the API: list, create from JSON, upload a JSONL or CSV file, read, delete."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from decodelab.api.pagination import DefaultPagination
from decodelab.common.permissions import IsResearcher
from decodelab.experiments import selectors, services
from decodelab.experiments.promptfiles import FORMATS, MAX_UPLOAD_BYTES
from decodelab.experiments.serializers import PromptSetDetailSerializer, PromptSetSerializer

Q_PARAM = OpenApiParameter("q", OpenApiTypes.STR, description="Name contains (case-insensitive).")


class PromptSetListCreateApi(APIView):
    permission_classes = [IsResearcher]
    pagination_class = DefaultPagination  # the schema documents the paginated list

    @extend_schema_serializer(component_name="PromptSetCreate")
    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        prompts = serializers.ListField(
            child=serializers.JSONField(),
            help_text="Strings, or objects with prompt and optional id, reference, tags (at most 1,000).",
        )

    @extend_schema(parameters=[Q_PARAM], responses=PromptSetSerializer(many=True), operation_id="prompt_sets_list")
    def get(self, request):
        paginator = DefaultPagination()
        qs = selectors.prompt_set_list(user=request.user, q=request.query_params.get("q", ""))
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(PromptSetSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={201: PromptSetDetailSerializer},
        operation_id="prompt_sets_create",
        examples=[
            OpenApiExample(
                "two prompts",
                value={
                    "name": "capitals",
                    "prompts": [
                        {"id": "fr", "prompt": "The capital of France is", "reference": "Paris", "tags": ["geo"]},
                        "The capital of Italy is",
                    ],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt_set = services.prompt_set_create(owner=request.user, **data.validated_data)
        prompt_set = selectors.prompt_set_get(user=request.user, prompt_set_id=prompt_set.id)
        return Response(PromptSetDetailSerializer(prompt_set).data, status=status.HTTP_201_CREATED)


class PromptSetUploadApi(APIView):
    """multipart/form-data only: the file travels as a file, not inside JSON."""

    permission_classes = [IsResearcher]
    parser_classes = [MultiPartParser]

    @extend_schema_serializer(component_name="PromptSetUpload")
    class InputSerializer(serializers.Serializer):
        file = serializers.FileField(
            help_text=f"JSONL or CSV, UTF-8, at most {MAX_UPLOAD_BYTES // 1024 // 1024} MB and 1,000 prompts. "
            "Columns/keys: prompt (required), id, reference, tags (CSV: separated by ';')."
        )
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        format = serializers.ChoiceField(
            choices=FORMATS, required=False, help_text="Default: from the file name (.jsonl, .csv)."
        )

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={201: PromptSetDetailSerializer},
        operation_id="prompt_sets_upload",
        description="Upload a prompt set. Errors name the line and the field; a refused file stores nothing. "
        "Prompts repeating an earlier prompt are kept and flagged (duplicate_of).",
        examples=[
            OpenApiExample(
                "CSV file",
                value={"name": "capitals", "file": "prompt,id,reference\nThe capital of France is,fr,Paris\n"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        prompt_set = services.prompt_set_upload(
            owner=request.user,
            name=data.validated_data["name"],
            data=upload.read(MAX_UPLOAD_BYTES + 1),
            filename=upload.name,
            size=upload.size,
            file_format=data.validated_data.get("format", ""),
        )
        prompt_set = selectors.prompt_set_get(user=request.user, prompt_set_id=prompt_set.id)
        return Response(PromptSetDetailSerializer(prompt_set).data, status=status.HTTP_201_CREATED)


class PromptSetDetailApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=PromptSetDetailSerializer, operation_id="prompt_sets_retrieve")
    def get(self, request, prompt_set_id):
        return Response(
            PromptSetDetailSerializer(selectors.prompt_set_get(user=request.user, prompt_set_id=prompt_set_id)).data
        )

    @extend_schema(responses={204: None}, operation_id="prompt_sets_delete")
    def delete(self, request, prompt_set_id):
        services.prompt_set_delete(prompt_set=selectors.prompt_set_get(user=request.user, prompt_set_id=prompt_set_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
