"""Browser pages of the experiments app (mounted at /experiments/)."""

from django.urls import path

from decodelab.experiments.views import experiments, outputs, presets, prompt_sets

app_name = "experiments"
urlpatterns = [
    path("", experiments.experiment_list, name="experiment_list"),
    path("new/", experiments.experiment_new, name="experiment_new"),
    path("<uuid:experiment_id>/", experiments.experiment_detail, name="experiment_detail"),
    path("<uuid:experiment_id>/cancel/", experiments.experiment_cancel, name="experiment_cancel"),
    path("<uuid:experiment_id>/metrics/", experiments.experiment_metrics, name="experiment_metrics"),
    path("<uuid:experiment_id>/export/", experiments.experiment_export, name="experiment_export"),
    path("<uuid:experiment_id>/grid/", outputs.experiment_grid, name="experiment_grid"),
    path(
        "<uuid:experiment_id>/cells/<int:item_id>/<str:config_hash>/",
        outputs.experiment_cell,
        name="experiment_cell",
    ),
    path("<uuid:experiment_id>/prompts/<int:item_id>/", outputs.experiment_prompt, name="experiment_prompt"),
    path("<uuid:experiment_id>/diff/", outputs.experiment_diff, name="experiment_diff"),
    path("prompt-sets/", prompt_sets.prompt_set_list, name="prompt_set_list"),
    path("prompt-sets/new/", prompt_sets.prompt_set_new, name="prompt_set_new"),
    path("prompt-sets/upload/", prompt_sets.prompt_set_upload, name="prompt_set_upload"),
    path("prompt-sets/<uuid:prompt_set_id>/", prompt_sets.prompt_set_detail, name="prompt_set_detail"),
    path("prompt-sets/<uuid:prompt_set_id>/delete/", prompt_sets.prompt_set_delete, name="prompt_set_delete"),
    path("presets/", presets.preset_list, name="preset_list"),
    path("presets/new/", presets.preset_new, name="preset_new"),
    path("presets/fields/", presets.preset_fields, name="preset_fields"),
    path("presets/<uuid:preset_id>/", presets.preset_edit, name="preset_edit"),
    path("presets/<uuid:preset_id>/clone/", presets.preset_clone, name="preset_clone"),
    path("presets/<uuid:preset_id>/delete/", presets.preset_delete, name="preset_delete"),
    path("sweeps/new/", presets.sweep_new, name="sweep_new"),
    path("sweeps/fields/", presets.sweep_fields, name="sweep_fields"),
    path("sweeps/<uuid:sweep_id>/", presets.sweep_detail, name="sweep_detail"),
]
