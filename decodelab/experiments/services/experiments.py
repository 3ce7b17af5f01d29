"""Experiments: prompt set x presets x samples, stored as runs.Comparison rows for the reaper to
dispatch; cancelling them."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from decodelab.catalog.confighash import config_hash
from decodelab.common.errors import ApplicationError
from decodelab.experiments.models import (
    Experiment,
    ExperimentComparison,
    ExperimentConfig,
    Preset,
    PromptSet,
    SeedPolicy,
)
from decodelab.experiments.services.common import checked_name
from decodelab.experiments.services.presets import EDITABLE, preset_identity
from decodelab.runs import services as runs_services
from decodelab.runs.models import FINISHED_STATUSES, Run
from workers.protocol import ParamError, validate_seed

MAX_PRESETS_PER_EXPERIMENT = 25
MAX_SAMPLES = 16


# --- experiments -------------------------------------------------------------------------


def _check_seeds(samples: Any, seeds: Any) -> tuple[int, list[int]]:
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise ApplicationError(f"must be an integer between 1 and {MAX_SAMPLES}", field="samples")
    if seeds in (None, []):
        return samples, list(range(samples))
    if not isinstance(seeds, list) or len(seeds) != samples:
        raise ApplicationError(f"list exactly one seed per sample ({samples})", field="seeds")
    for i, s in enumerate(seeds):
        try:
            validate_seed(s)
        except ParamError as exc:
            raise ApplicationError(exc.message, field=f"seeds[{i}]") from exc
    if len(set(seeds)) != len(seeds):
        raise ApplicationError("seeds must differ (equal seeds give equal samples)", field="seeds")
    return samples, list(seeds)


def _snapshot(preset: Preset, position: int, experiment: Experiment) -> ExperimentConfig:
    """Copy the preset, re-hashed with the model's current revision (a worker may have reported
    new library versions since the preset was saved): the hash its runs will get."""
    fields = {k: getattr(preset, k) for k in EDITABLE if k != "name"}
    identity = preset_identity(fields)
    digest = config_hash(identity)
    if digest != preset.config_hash:
        Preset.objects.filter(id=preset.id).update(config_hash=digest, identity=identity)
    return ExperimentConfig(
        experiment=experiment,
        position=position,
        preset=preset,
        label=preset.name,
        config_hash=digest,
        identity=identity,
        **fields,
    )


@transaction.atomic
def experiment_create(
    *,
    owner,
    name: Any,
    prompt_set: PromptSet,
    presets: list[Preset],
    samples: Any = 1,
    seeds: Any = None,
    skip_duplicates: bool = True,
) -> Experiment:
    """Store the experiment, a copy of each preset, and per prompt one comparison per group of
    presets sharing model, max_new_tokens, chat, stop strings and seed policy.

    Runs are stored queued and undispatched: the reaper sends them within seconds and again after
    a crash or restart, which is what makes an experiment resumable. All or nothing: a refused
    prompt or the runs-in-flight quota (429) rolls the whole experiment back.
    """
    name = checked_name(name)
    if not presets:
        raise ApplicationError("choose at least one preset", field="presets")
    if len(presets) > MAX_PRESETS_PER_EXPERIMENT:
        raise ApplicationError(f"at most {MAX_PRESETS_PER_EXPERIMENT} presets (got {len(presets)})", field="presets")
    samples, seeds = _check_seeds(samples, seeds)
    items = list(prompt_set.items.order_by("position"))
    if skip_duplicates:
        items = [item for item in items if item.duplicate_of_id is None]
    experiment = Experiment(
        owner=owner, name=name, prompt_set=prompt_set, samples=samples, seeds=seeds, skip_duplicates=skip_duplicates
    )
    experiment.full_clean()
    experiment.save()
    configs = [_snapshot(p, i, experiment) for i, p in enumerate(presets)]
    first: dict[str, int] = {}
    for i, config in enumerate(configs):
        j = first.setdefault(config.config_hash, i)
        if j != i:
            raise ApplicationError(
                f"{presets[i].name!r} is the same configuration as {presets[j].name!r} (hash {config.config_hash})",
                field=f"presets[{i}]",
            )
    ExperimentConfig.objects.bulk_create(configs)

    groups: dict[tuple, list[ExperimentConfig]] = {}
    for config in configs:
        key = (config.model, config.max_new_tokens, config.chat, tuple(config.stop), config.seed_policy)
        groups.setdefault(key, []).append(config)
    links = []
    for item in items:
        for (model, max_new_tokens, chat, stop, seed_policy), group in groups.items():
            run_presets = [
                {
                    "strategy": c.strategy,
                    "params": c.params,
                    "seed": seeds[sample] if seed_policy == SeedPolicy.PER_SAMPLE else c.seed,
                    "label": c.label,
                    "sample": sample,
                }
                for c in group
                for sample in range(samples)
            ]
            try:
                comparison = runs_services.comparison_create(
                    owner=owner,
                    prompt=item.prompt,
                    presets=run_presets,
                    max_new_tokens=max_new_tokens,
                    chat=chat,
                    model=model,
                    stop=list(stop),
                    max_presets=len(run_presets),
                    seed_policy=seed_policy,
                    dispatch_now=False,
                )
            except ApplicationError as exc:
                if exc.status_code != 400:
                    raise  # the quota (429) keeps its status and message
                raise ApplicationError(f"prompt {item.external_id!r}: {exc.message}", field=exc.field) from exc
            links.append(ExperimentComparison(experiment=experiment, item=item, comparison=comparison))
    ExperimentComparison.objects.bulk_create(links)
    return experiment


@transaction.atomic
def experiment_cancel(*, experiment: Experiment) -> int:
    """Cancel every unfinished run of the experiment; returns how many were cancelled."""
    runs = list(
        Run.objects.filter(comparison__experiment_link__experiment=experiment).exclude(status__in=FINISHED_STATUSES)
    )
    cancelled = runs_services.runs_cancel(runs=runs)
    if experiment.cancelled_at is None:
        experiment.cancelled_at = timezone.now()
        experiment.save(update_fields=["cancelled_at", "updated_at"])
    return cancelled
