from django.urls import include, path

from decodelab.catalog import apis as catalog_apis
from decodelab.runs import apis as runs_apis

urlpatterns = [
    path("comparisons/", runs_apis.ComparisonListCreateApi.as_view(), name="api-comparisons"),
    path("comparisons/<uuid:comparison_id>/", runs_apis.ComparisonDetailApi.as_view(), name="api-comparison"),
    path(
        "comparisons/<uuid:comparison_id>/cancel/",
        runs_apis.ComparisonCancelApi.as_view(),
        name="api-comparison-cancel",
    ),
    path(
        "comparisons/<uuid:comparison_id>/status/",
        runs_apis.ComparisonStatusApi.as_view(),
        name="api-comparison-status",
    ),
    path("runs/<uuid:run_id>/", runs_apis.RunDetailApi.as_view(), name="api-run"),
    path("runs/<uuid:run_id>/cancel/", runs_apis.RunCancelApi.as_view(), name="api-run-cancel"),
    path("strategies/", catalog_apis.StrategyListApi.as_view(), name="api-strategies"),
    path("models/", catalog_apis.ModelListApi.as_view(), name="api-models"),
    path("", include("decodelab.experiments.api_urls")),
    path("", include("decodelab.ratings.api_urls")),
]
