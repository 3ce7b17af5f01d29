from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from decodelab.catalog import selectors


class ParamSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    default = serializers.JSONField()


class StrategySerializer(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    params = ParamSerializer(many=True)


class ModelSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    chat_template = serializers.BooleanField()
    default = serializers.BooleanField()


class CatalogSerializer(serializers.Serializer):
    strategies = StrategySerializer(many=True)
    models = ModelSerializer(many=True)


class StrategyListApi(APIView):
    @extend_schema(responses=CatalogSerializer, operation_id="catalog_retrieve")
    def get(self, request):
        return Response({"strategies": selectors.strategy_list(), "models": selectors.model_list()})
