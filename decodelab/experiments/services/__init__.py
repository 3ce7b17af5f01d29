"""Writes of the workbench: prompt sets, presets, sweeps, experiments (and cancelling them).

Every service validates everything before it writes a row and runs in one transaction, so a
refused request stores nothing.
"""

from decodelab.experiments.services.experiments import (
    MAX_PRESETS_PER_EXPERIMENT,
    MAX_SAMPLES,
    experiment_cancel,
    experiment_create,
)
from decodelab.experiments.services.presets import (
    EDITABLE,
    MAX_SWEEP_POINTS,
    MAX_SWEEP_VALUES,
    preset_clone,
    preset_create,
    preset_delete,
    preset_identity,
    preset_update,
    sweep_create,
)
from decodelab.experiments.services.prompt_sets import prompt_set_create, prompt_set_delete, prompt_set_upload

__all__ = [
    "EDITABLE",
    "MAX_PRESETS_PER_EXPERIMENT",
    "MAX_SAMPLES",
    "MAX_SWEEP_POINTS",
    "MAX_SWEEP_VALUES",
    "experiment_cancel",
    "experiment_create",
    "preset_clone",
    "preset_create",
    "preset_delete",
    "preset_identity",
    "preset_update",
    "prompt_set_create",
    "prompt_set_delete",
    "prompt_set_upload",
    "sweep_create",
]
