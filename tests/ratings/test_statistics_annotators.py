"""Annotator checks: position bias and gold accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from decodelab.ratings.statistics import Vote, gold_accuracy, position_bias


def _annotator_votes(rng: np.random.Generator, annotator: str, n: int, *, picks_left: bool) -> list[Vote]:
    votes = []
    for k in range(n):
        left = "a" if rng.random() < 0.5 else "b"
        outcome = left if picks_left else ("a", "b", "tie")[rng.choice(3, p=[0.45, 0.45, 0.1])]
        votes.append(Vote(f"p{k}", annotator, "x", "y", outcome, shown_left=left))
    return votes


def test_an_annotator_who_always_picks_left_is_flagged_and_an_unbiased_one_is_not():
    rng = np.random.default_rng(0)
    votes = _annotator_votes(rng, "lefty", 60, picks_left=True) + _annotator_votes(rng, "fair", 300, picks_left=False)
    report = {row.annotator: row for row in position_bias(votes)}
    assert report["lefty"].left_share == 1.0
    assert report["lefty"].p_value < 1e-6
    fair = report["fair"]
    assert fair.n_decisive == sum(v.outcome in ("a", "b") for v in votes if v.annotator_id == "fair")
    assert fair.p_value > 0.01
    assert fair.p_value == pytest.approx(binomtest(fair.n_left, fair.n_decisive).pvalue)


def test_an_annotator_with_only_ties_has_no_position_figure():
    report = position_bias([Vote("p", "t", "x", "y", "tie"), Vote("q", "t", "x", "y", "both_bad")])
    assert report[0].n_decisive == 0
    assert np.isnan(report[0].left_share)
    assert report[0].p_value == 1.0


def test_gold_accuracy_counts_judgeable_votes_in_either_orientation():
    gold = {"g1": "good", "g2": "tie"}
    votes = [
        Vote("g1", "ann", "good", "bad", "a"),  # correct
        Vote("g1", "ann", "bad", "good", "b"),  # correct, sides swapped
        Vote("g1", "ann", "bad", "good", "a"),  # wrong
        Vote("g1", "ann", "bad", "other", "a"),  # expected winner absent: not judged
        Vote("g2", "ann", "good", "bad", "tie"),  # correct
        Vote("p9", "ann", "good", "bad", "b"),  # not a gold item
        Vote("g2", "bob", "good", "bad", "a"),  # wrong
    ]
    report = {row.annotator: row for row in gold_accuracy(votes, gold)}
    assert (report["ann"].n_gold, report["ann"].n_correct) == (4, 3)
    assert report["ann"].accuracy == 0.75
    assert report["ann"].ci_lower < 0.75 < report["ann"].ci_upper
    assert (report["bob"].n_gold, report["bob"].accuracy) == (1, 0.0)
