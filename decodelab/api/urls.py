from django.urls import path

from decodelab.catalog import apis as catalog_apis
from decodelab.runs import apis as runs_apis

urlpatterns = [
    path("comparisons/", runs_apis.ComparisonListCreateApi.as_view(), name="api-comparisons"),
    path("comparisons/<uuid:comparison_id>/", runs_apis.ComparisonDetailApi.as_view(), name="api-comparison"),
    path("runs/<uuid:run_id>/", runs_apis.RunDetailApi.as_view(), name="api-run"),
    path("strategies/", catalog_apis.StrategyListApi.as_view(), name="api-strategies"),
    path("models/", catalog_apis.ModelListApi.as_view(), name="api-models"),
]
