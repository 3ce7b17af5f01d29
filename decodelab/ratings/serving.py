"""What an annotator gets next: sync items, then their queue, or (active sessions) a freshly drawn pair.

This module sits beside the layers because it needs services (to write the assignment), selectors
and the statistics package (to choose the pair), which the import contract keeps apart.
"""

from __future__ import annotations

import secrets

from decodelab.ratings import analysis, selectors, services
from decodelab.ratings.models import Assignment, RatingSession, SessionStatus
from decodelab.ratings.statistics.active import next_pair, separated

# Active sessions mix one gold item in every GOLD_EVERY items, so that gold checks are spread out.
GOLD_EVERY = 5
# Do not stop before every configuration has had a few votes, whatever the intervals say.
MIN_VOTES_PER_CONFIG = 5
_random = secrets.SystemRandom()


def next_assignment(*, session: RatingSession, user) -> Assignment | None:
    """The annotator's current item (the same one after a reload), or the next one; None when done."""
    if session.status == SessionStatus.CLOSED:
        return None
    services.session_items_sync(session=session)
    current = selectors.assignment_in_progress(session=session, user=user)
    if current is not None:
        return current
    if session.active:
        chosen = _next_active(session, user)
    else:
        chosen = selectors.assignment_next_pending(session=session, user=user)
    return None if chosen is None else services.assignment_mark_shown(assignment=chosen)


def _next_active(session: RatingSession, user) -> Assignment | None:
    gold = selectors.assignment_next_pending(session=session, user=user, gold_only=True)
    progress = selectors.annotator_progress(session=session, user=user)
    if gold is not None and progress["done"] % GOLD_EVERY == GOLD_EVERY - 1:
        return gold
    if session.status != SessionStatus.OPEN:
        return gold
    votes = analysis.as_pairwise(selectors.session_votes(session=session), session.mode)
    configs = [c["config"] for c in analysis.session_configs(session=session)]
    if len(votes) >= MIN_VOTES_PER_CONFIG * len(configs) and separated(votes, configs=configs):
        services.session_stop(session=session)
        return gold
    available = selectors.active_available_items(session=session, user=user)
    if not available:
        return gold
    by_pair: dict[tuple[str, str], list] = {}
    for item in available:
        a, b = (c.config_hash for c in item.candidates.all())
        by_pair.setdefault(tuple(sorted((a, b))), []).append(item)
    candidates = sorted({c for pair in by_pair for c in pair})
    pair = tuple(sorted(next_pair(votes, candidates=candidates, configs=configs)))
    # The pair the policy wants may already be used up for this annotator (they rated it on every
    # prompt); then any pair still open is better than an empty queue.
    items = by_pair.get(pair) or by_pair[_random.choice(sorted(by_pair))]  # type: ignore[index]
    for item in _random.sample(items, len(items)):
        assignment = services.assignment_create(item=item, annotator=user)
        if assignment is not None:
            return assignment
    return gold
