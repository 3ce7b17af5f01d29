from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from decodelab.catalog import selectors
from decodelab.common.permissions import IsResearcher


class ParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField(help_text="int, float, bool, choice, model, text, long_text, json or lines")
    default = serializers.JSONField()
    help = serializers.CharField()
    options = serializers.ListField(child=serializers.CharField())


class StrategySerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params = ParamSerializer(many=True)


class ModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    tokenizer_family = serializers.CharField()
    chat_template = serializers.BooleanField()
    prepared = serializers.BooleanField()
    size_bytes = serializers.IntegerField(allow_null=True)
    default = serializers.BooleanField()
    draft_models = serializers.ListField(
        child=serializers.CharField(), help_text="Models sharing this model's tokenizer: valid speculative drafts."
    )


class CatalogSerializer(serializers.Serializer):
    strategies = StrategySerializer(many=True)
    models = ModelSerializer(many=True)


class StrategyListApi(APIView):
    permission_classes = [IsResearcher]  # annotators rate blind: strategies and models are not theirs to see

    @extend_schema(responses=CatalogSerializer, operation_id="catalog_retrieve")
    def get(self, request):
        return Response({"strategies": selectors.strategy_list(), "models": selectors.model_list()})


class ModelListApi(APIView):
    permission_classes = [IsResearcher]

    @extend_schema(responses=ModelSerializer(many=True), operation_id="models_list")
    def get(self, request):
        return Response(selectors.model_list())
