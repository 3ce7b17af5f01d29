"""REST endpoints of the experiments app, mounted under /api/v1/."""

from django.urls import path

from decodelab.experiments.apis import experiments, presets, prompt_sets

urlpatterns = [
    path("prompt-sets/", prompt_sets.PromptSetListCreateApi.as_view(), name="api-prompt-sets"),
    path("prompt-sets/upload/", prompt_sets.PromptSetUploadApi.as_view(), name="api-prompt-set-upload"),
    path("prompt-sets/<uuid:prompt_set_id>/", prompt_sets.PromptSetDetailApi.as_view(), name="api-prompt-set"),
    path("presets/", presets.PresetListCreateApi.as_view(), name="api-presets"),
    path("presets/<uuid:preset_id>/", presets.PresetDetailApi.as_view(), name="api-preset"),
    path("presets/<uuid:preset_id>/clone/", presets.PresetCloneApi.as_view(), name="api-preset-clone"),
    path("sweeps/", presets.SweepListCreateApi.as_view(), name="api-sweeps"),
    path("sweeps/<uuid:sweep_id>/", presets.SweepDetailApi.as_view(), name="api-sweep"),
    path("experiments/", experiments.ExperimentListCreateApi.as_view(), name="api-experiments"),
    path("experiments/<uuid:experiment_id>/", experiments.ExperimentDetailApi.as_view(), name="api-experiment"),
    path(
        "experiments/<uuid:experiment_id>/cancel/",
        experiments.ExperimentCancelApi.as_view(),
        name="api-experiment-cancel",
    ),
    path("experiments/<uuid:experiment_id>/grid/", experiments.ExperimentGridApi.as_view(), name="api-experiment-grid"),
    path(
        "experiments/<uuid:experiment_id>/metrics/",
        experiments.ExperimentMetricsApi.as_view(),
        name="api-experiment-metrics",
    ),
    # No trailing slash: the path the issue names (`GET /api/v1/experiments/{id}/export?format=csv`).
    path(
        "experiments/<uuid:experiment_id>/export",
        experiments.ExperimentExportApi.as_view(),
        name="api-experiment-export",
    ),
    path("outputs/diff/", experiments.OutputDiffApi.as_view(), name="api-output-diff"),
]
