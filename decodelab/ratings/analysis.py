"""From stored votes to the statistics package's inputs, and from its results to one JSON-able report.

The maths lives in ``decodelab.ratings.statistics``; this module only adapts: a stored vote on
the pair (candidate 0, candidate 1) of an item becomes ``statistics.pairwise.Vote`` with
``config_a`` = candidate 0's configuration hash, and the side shown on the left is read from
the order stored with the vote. Rankings of k outputs are broken into the k(k-1)/2 pairwise
preferences they imply.
"""

from __future__ import annotations

import math
import statistics as pystats
from collections.abc import Iterable, Sequence
from dataclasses import asdict, is_dataclass
from itertools import combinations
from typing import Any

from django.core.cache import cache

from decodelab.ratings import selectors
from decodelab.ratings.models import Mode, RatingSession
from decodelab.ratings.models import Vote as StoredVote
from decodelab.ratings.statistics.agreement import (
    cohen_kappa_pairs,
    fleiss_kappa,
    krippendorff_alpha,
    reliability_data,
    vote_reliability_data,
)
from decodelab.ratings.statistics.bias import gold_accuracy, position_bias
from decodelab.ratings.statistics.bradley_terry import fit_bradley_terry, fit_bradley_terry_length_controlled
from decodelab.ratings.statistics.elo import elo_ratings
from decodelab.ratings.statistics.likert import LikertRating, likert_summary
from decodelab.ratings.statistics.pairwise import Vote, outcome_matrices
from decodelab.ratings.statistics.pareto import ParetoPoint, pareto_frontier

N_BOOTSTRAP = 1000
# With lengths every vote is its own likelihood row (no pooling of identical votes), so each
# resample costs as much as the votes; 200 resamples keep the page within about a second.
N_BOOTSTRAP_LC = 200
CI_LEVEL = 0.95
GOLD_A, GOLD_B = "gold-0", "gold-1"


def _config(candidate) -> str:
    return candidate.config_hash or (GOLD_A if candidate.position == 0 else GOLD_B)


def _pairwise(vote: StoredVote) -> Vote | None:
    item = vote.assignment.item
    candidates = list(item.candidates.all())
    if len(candidates) < 2:  # not a pair (a damaged item): nothing to learn from, never a crash
        return None
    first, second = candidates[:2]
    shown_left = "a" if vote.shown_order[0] == first.public_id else "b"
    outcome = {"tie": "tie", "both_bad": "both_bad"}.get(vote.choice)
    if outcome is None:
        left_won = vote.choice == "left"
        outcome = shown_left if left_won else ("b" if shown_left == "a" else "a")
    return Vote(
        item_id=item.public_id,
        annotator_id=vote.assignment.annotator.username,
        config_a=_config(first),
        config_b=_config(second),
        outcome=outcome,  # type: ignore[arg-type]
        shown_left=shown_left,  # type: ignore[arg-type]
        length_a=first.n_tokens,
        length_b=second.n_tokens,
    )


def pairwise_votes(*, session: RatingSession) -> list[Vote]:
    """A pairwise session's non-gold votes from two flat queries (what active selection reads per request)."""
    candidates = selectors.candidate_rows(session=session)
    out = []
    for item_id, item_public_id, annotator, choice, shown_order in selectors.vote_rows(session=session):
        if len(candidates.get(item_id, ())) < 2:
            continue
        (first, config_a, length_a), (_, config_b, length_b) = candidates[item_id][:2]
        shown_left = "a" if shown_order[0] == first else "b"
        outcome = {"tie": "tie", "both_bad": "both_bad"}.get(choice)
        if outcome is None:
            outcome = shown_left if choice == "left" else ("b" if shown_left == "a" else "a")
        out.append(Vote(item_public_id, annotator, config_a, config_b, outcome, shown_left, length_a, length_b))  # type: ignore[arg-type]
    return out


def _implied_by_ranking(vote: StoredVote) -> list[Vote]:
    item = vote.assignment.item
    by_id = {c.public_id: c for c in item.candidates.all()}
    rank = {pid: i for i, pid in enumerate(vote.ranking or [])}
    shown = {pid: i for i, pid in enumerate(vote.shown_order)}
    out = []
    for a, b in combinations(sorted(by_id.values(), key=lambda c: c.position), 2):
        out.append(
            Vote(
                item_id=f"{item.public_id}:{a.position}-{b.position}",
                annotator_id=vote.assignment.annotator.username,
                config_a=_config(a),
                config_b=_config(b),
                outcome="a" if rank[a.public_id] < rank[b.public_id] else "b",
                shown_left="a" if shown[a.public_id] < shown[b.public_id] else "b",
                length_a=a.n_tokens,
                length_b=b.n_tokens,
            )
        )
    return out


def as_pairwise(votes: Iterable[StoredVote], mode: str) -> list[Vote]:
    """Votes of a pairwise or ranking session in the statistics package's form (gold items excluded)."""
    out: list[Vote] = []
    for vote in votes:
        if vote.assignment.item.gold:
            continue
        if mode == Mode.PAIRWISE:
            pair = _pairwise(vote)
            if pair is not None:
                out.append(pair)
        elif mode == Mode.RANKING:
            out.extend(_implied_by_ranking(vote))
    return out


def _gold_judgements(votes: Iterable[StoredVote], mode: str) -> tuple[list[Vote], dict[str, str]]:
    """Gold votes as pairwise votes plus the expected answers, for ``statistics.bias.gold_accuracy``.

    Likert and ranking gold answers are judged here (Likert: every expected criterion within one point;
    ranking: the expected best output ranked first) and passed on as a vote that is right or wrong.
    """
    judged: list[Vote] = []
    expected: dict[str, str] = {}
    for vote in votes:
        item = vote.assignment.item
        if not item.gold:
            continue
        if mode == Mode.PAIRWISE:
            pair = _pairwise(vote)
            if pair is None:
                continue
            judged.append(pair)
            expected[item.public_id] = {0: GOLD_A, 1: GOLD_B}.get(item.expected, item.expected)
            continue
        if mode == Mode.LIKERT:
            given = {s.criterion: s.value for s in vote.scores.all()}
            correct = all(abs(given.get(c, 99) - v) <= 1 for c, v in item.expected.items())
        else:
            best = [c.public_id for c in item.candidates.all() if c.position == item.expected[0]]
            correct = bool(vote.ranking) and vote.ranking[0] == best[0]
        annotator = vote.assignment.annotator.username
        judged.append(Vote(item.public_id, annotator, GOLD_A, GOLD_B, "a" if correct else "b"))
        expected[item.public_id] = GOLD_A
    return judged, expected


def _clean(value: Any) -> Any:
    """Dataclasses to dicts and NaN/inf to None, so the report is valid JSON."""
    if is_dataclass(value) and not isinstance(value, type):
        return _clean(asdict(value))
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "tolist"):
        return _clean(value.tolist())  # numpy arrays and scalars
    return value


def _attempt(fn, *args, **kwargs) -> dict[str, Any]:
    """Run one statistic; too little data is reported as a message instead of failing the page."""
    try:
        return {"result": _clean(fn(*args, **kwargs))}
    except (ValueError, ZeroDivisionError, IndexError) as exc:
        return {"error": str(exc)}


def session_configs(*, session: RatingSession) -> list[dict[str, Any]]:
    """Configurations in the session: hash, label and median decode cost (ms per token) over its outputs."""
    rows: dict[str, dict[str, Any]] = {}
    for c in selectors.session_candidates(session=session).values("config_hash", "label", "cost_ms_per_token"):
        row = rows.setdefault(c["config_hash"], {"config": c["config_hash"], "label": c["label"], "costs": []})
        if c["cost_ms_per_token"] is not None:
            row["costs"].append(c["cost_ms_per_token"])
    out = []
    for row in rows.values():
        costs = row.pop("costs")
        out.append({**row, "cost_ms_per_token": pystats.median(costs) if costs else None})
    return sorted(out, key=lambda r: r["label"])


def _agreement(data, level: str) -> dict[str, Any]:
    # Fleiss' kappa picks the most common number of ratings per item itself: with skips and
    # unfinished queues that is often fewer than the session's overlap.
    return {
        "krippendorff_alpha": _attempt(krippendorff_alpha, data, level=level, n_bootstrap=N_BOOTSTRAP),
        "cohen_kappa": _attempt(cohen_kappa_pairs, data),
        "fleiss_kappa": _attempt(fleiss_kappa, data),
    }


NO_VOTES = {"error": "No votes yet."}


def _pairwise_report(votes: list[Vote], configs: Sequence[str], session: RatingSession) -> dict[str, Any]:
    if not votes:
        blocks = ["bradley_terry", "length_controlled", "elo", "matrix", "position_bias"]
        return {**dict.fromkeys(blocks, NO_VOTES), "agreement": {}}
    known = [c for c in configs if any(c in (v.config_a, v.config_b) for v in votes)]
    report: dict[str, Any] = {
        "bradley_terry": _attempt(fit_bradley_terry, votes, configs=known, n_bootstrap=N_BOOTSTRAP, ci_level=CI_LEVEL),
        "length_controlled": _attempt(
            fit_bradley_terry_length_controlled, votes, configs=known, n_bootstrap=N_BOOTSTRAP_LC, ci_level=CI_LEVEL
        ),
        "elo": _attempt(elo_ratings, votes, configs=known),
        "matrix": _attempt(outcome_matrices, votes, configs=known),
        "agreement": _agreement(vote_reliability_data(votes), "nominal") if votes else {},
    }
    if session.mode == Mode.PAIRWISE:
        report["position_bias"] = _attempt(position_bias, votes)
    return report


def _likert_report(stored: list[StoredVote], session: RatingSession) -> dict[str, Any]:
    ratings, triples = [], []
    for vote in stored:
        if vote.assignment.item.gold:
            continue
        for score in vote.scores.all():
            ratings.append(LikertRating(score.candidate.config_hash, score.criterion, score.value))
            unit = (vote.assignment.item.public_id, score.criterion)
            triples.append((vote.assignment.annotator.username, unit, score.value))
    report: dict[str, Any] = {"likert": _attempt(likert_summary, ratings, ci_level=CI_LEVEL) if ratings else NO_VOTES}
    if triples:
        data = reliability_data(triples, categories=[1, 2, 3, 4, 5])
        report["agreement"] = _agreement(data, "ordinal")
    return report


def _quality_cost(report: dict[str, Any], configs: list[dict[str, Any]], session: RatingSession) -> dict[str, Any]:
    """Quality (BT score, or Likert 'overall' mean) against cost, with the Pareto frontier."""
    cost = {c["config"]: c["cost_ms_per_token"] for c in configs}
    rows: list[dict[str, Any]] = []
    if session.mode == Mode.LIKERT:
        summary = report.get("likert", {}).get("result") or []
        criterion = "overall" if any(r["criterion"] == "overall" for r in summary) else None
        per_config: dict[str, list[dict]] = {}
        for r in summary:
            if criterion is None or r["criterion"] == criterion:
                per_config.setdefault(r["config"], []).append(r)
        for config, cells in per_config.items():
            mean = sum(c["mean"] for c in cells) / len(cells)
            lows = [c["ci_lower"] for c in cells if c["ci_lower"] is not None]
            highs = [c["ci_upper"] for c in cells if c["ci_upper"] is not None]
            rows.append(
                {
                    "config": config,
                    "score": mean,
                    "ci_lower": min(lows, default=None),
                    "ci_upper": max(highs, default=None),
                }
            )
        name = f"Likert mean ({criterion or 'all criteria'})"
    else:
        for r in (report.get("bradley_terry", {}).get("result") or {}).get("scores", []):
            rows.append({k: r[k] for k in ("config", "score", "ci_lower", "ci_upper")})
        name = "Bradley-Terry score"
    points = [r for r in rows if cost.get(r["config"]) is not None]
    for r in points:
        r["cost"] = cost[r["config"]]
    frontier = {p.config for p in pareto_frontier(ParetoPoint(r["config"], r["score"], r["cost"]) for r in points)}
    for r in points:
        r["on_frontier"] = r["config"] in frontier
    return {"score_name": name, "points": points, "without_cost": [r["config"] for r in rows if r not in points]}


def session_report(*, session: RatingSession) -> dict[str, Any]:
    """Every statistic of the rankings page and API, cached until the next vote."""
    counts = selectors.vote_counts(session=session)
    key = f"ratings:report:{session.id}:{counts['votes']}:{counts['gold']}:{counts['last']}:{session.status}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    configs = session_configs(session=session)
    report: dict[str, Any] = {
        "mode": session.mode,
        "ci_level": CI_LEVEL,
        "n_bootstrap": N_BOOTSTRAP,
        "n_bootstrap_length_controlled": N_BOOTSTRAP_LC,
        "n_votes": counts["votes"],
        "n_gold_votes": counts["gold"],
        "configs": configs,
    }
    if session.mode == Mode.LIKERT:
        report.update(_likert_report(list(selectors.session_votes(session=session, gold=False)), session))
    else:
        if session.mode == Mode.PAIRWISE:
            votes = pairwise_votes(session=session)
        else:
            votes = as_pairwise(selectors.session_votes(session=session, gold=False), session.mode)
        report.update(_pairwise_report(votes, [c["config"] for c in configs], session))
    judged, expected = _gold_judgements(selectors.session_votes(session=session, gold=True), session.mode)
    report["gold_accuracy"] = _attempt(gold_accuracy, judged, expected, ci_level=CI_LEVEL)
    report["quality_cost"] = _quality_cost(report, configs, session)
    cache.set(key, report, 600)
    return report
