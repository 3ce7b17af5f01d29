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
    votes = analysis.pairwise_votes(session=session)
    configs = [c["config"] for c in analysis.session_configs(session=session)]
    if len(votes) >= MIN_VOTES_PER_CONFIG * len(configs) and separated(votes, configs=configs):
        services.session_stop(session=session)
        return gold
    by_pair = selectors.active_open_pairs(session=session, user=user)
    if not by_pair:
        return gold
    candidates = sorted({c for pair in by_pair for c in pair})
    a, b = next_pair(votes, candidates=candidates, configs=configs)
    # The pair the policy wants may already be used up for this annotator (they rated it on every
    # prompt); then any pair still open is better than an empty queue.
    items = by_pair.get((min(a, b), max(a, b))) or by_pair[_random.choice(sorted(by_pair))]
    for item_id in _random.sample(items, len(items)):
        assignment = services.assignment_create(item=selectors.item_get(item_id=item_id), annotator=user)
        if assignment is not None:
            return assignment
    return gold
