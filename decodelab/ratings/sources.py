"""Where a session's comparisons come from besides an explicit list: an experiment (one comparison
per prompt, or per prompt and model), read through the experiments app's selectors."""

from __future__ import annotations

from django.http import Http404

from decodelab.common.errors import ApplicationError


def experiment_comparison_ids(*, user, experiment_id) -> list[str]:
    """The comparisons of one of the user's experiments; a foreign or unknown experiment is an input error."""
    # Imported here so that the ratings pages keep working while the experiments app changes.
    from decodelab.experiments import selectors as experiment_selectors

    try:
        experiment = experiment_selectors.experiment_get(user=user, experiment_id=experiment_id)
    except Http404:
        raise ApplicationError(f"no experiment {experiment_id}", field="experiment") from None
    return [str(pk) for pk in experiment.comparisons.values_list("comparison_id", flat=True)]


def experiment_choices(*, user) -> list[tuple[str, str]]:
    """(id, name) of the user's experiments, for the new-session form; empty if the app cannot be read."""
    try:
        from decodelab.experiments import selectors as experiment_selectors

        return [(str(e.id), e.name) for e in experiment_selectors.experiment_list(user=user).order_by("-created_at")]
    except (ImportError, AttributeError):  # the form still works from comparisons alone
        return []
