"""Agreement: Krippendorff's alpha against the krippendorff package, kappas against hand computations."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest

from decodelab.ratings.statistics import (
    Vote,
    cohen_kappa,
    cohen_kappa_pairs,
    fleiss_kappa,
    krippendorff_alpha,
    reliability_data,
    vote_reliability_data,
)


def _random_reliability(rng: np.random.Generator, annotators: int, units: int, values: int, missing: float):
    truth = rng.integers(0, values, size=units)
    noisy = np.where(rng.random((annotators, units)) < 0.6, truth, rng.integers(0, values, size=(annotators, units)))
    data = noisy.astype(float)
    data[rng.random(data.shape) < missing] = np.nan
    return data


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", range(6))
def test_alpha_equals_the_krippendorff_package(level, seed):
    rng = np.random.default_rng(seed)
    data = _random_reliability(rng, annotators=2 + seed, units=20 + 15 * seed, values=2 + seed % 4, missing=0.3)
    data[:, 0] = np.nan  # a unit nobody rated
    data[1:, 1] = np.nan  # a unit rated once: not pairable
    mine = krippendorff_alpha(data, level=level, n_bootstrap=0).alpha
    oracle = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
    print(f"\nalpha {level} seed {seed}: {mine:.6f}, |diff| vs krippendorff = {abs(mine - oracle):.1e}")
    assert mine == pytest.approx(oracle, abs=1e-9)


def test_alpha_bootstrap_interval_brackets_the_estimate_and_perfect_agreement_is_one():
    rng = np.random.default_rng(1)
    data = _random_reliability(rng, annotators=4, units=200, values=5, missing=0.2)
    result = krippendorff_alpha(data, level="ordinal", n_bootstrap=500, seed=2)
    assert result.ci_lower < result.alpha < result.ci_upper
    assert result.n_units == int(((~np.isnan(data)).sum(axis=0) >= 2).sum())
    perfect = np.tile(rng.integers(0, 3, size=50).astype(float), (3, 1))
    assert krippendorff_alpha(perfect, n_bootstrap=0).alpha == pytest.approx(1.0)


def test_alpha_of_a_single_value_is_undefined():
    assert np.isnan(krippendorff_alpha(np.ones((3, 10)), n_bootstrap=0).alpha)


def test_cohen_kappa_matches_the_definition_on_a_hand_example():
    first = ["yes", "yes", "no", "no", "yes", "no", "yes", "yes", "no", "yes"]
    second = ["yes", "no", "no", "no", "yes", "yes", "yes", "yes", "no", "yes"]
    # Agreement on 8 of 10 items. First says yes 6/10, second 6/10, so chance = 0.6*0.6 + 0.4*0.4 = 0.52.
    expected = (0.8 - 0.52) / (1 - 0.52)
    codes = {"no": 0.0, "yes": 1.0}
    kappa, shared = cohen_kappa([codes[v] for v in first], [codes[v] for v in second])
    assert kappa == pytest.approx(expected, abs=1e-12)
    assert shared == 10


def test_cohen_kappa_properties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=5000).astype(float)
    assert cohen_kappa(labels, labels)[0] == pytest.approx(1.0)
    independent = rng.integers(0, 4, size=5000).astype(float)
    assert abs(cohen_kappa(labels, independent)[0]) < 0.03
    with_missing = labels.copy()
    with_missing[:100] = np.nan
    assert cohen_kappa(with_missing, labels)[1] == 4900


def test_cohen_kappa_for_every_annotator_pair_uses_shared_items():
    data = reliability_data(
        [
            ("ann", "u1", "good"),
            ("ann", "u2", "bad"),
            ("bob", "u1", "good"),
            ("bob", "u2", "bad"),
            ("cid", "u3", "good"),
        ],
        categories=["bad", "good"],
    )
    pairs = {(p.annotator_a, p.annotator_b): p for p in cohen_kappa_pairs(data)}
    assert pairs["ann", "bob"].kappa == pytest.approx(1.0)
    assert pairs["ann", "bob"].n_items == 2
    assert pairs["ann", "cid"].n_items == 0
    assert np.isnan(pairs["ann", "cid"].kappa)


def test_fleiss_kappa_matches_the_definition_on_a_hand_example():
    # 4 items, 3 raters, categories 0/1/2.
    data = np.array([[0, 1, 2, 0], [0, 1, 2, 1], [0, 1, 1, 2]], dtype=float)
    # Per item, agreeing pairs / 3 pairs: 3/3, 3/3, 1/3, 0/3 -> P = (1 + 1 + 1/3 + 0) / 4.
    observed = (1 + 1 + 1 / 3 + 0) / 4
    shares = np.array([4, 5, 3]) / 12  # category counts over all 12 ratings
    chance = float((shares**2).sum())
    result = fleiss_kappa(data)
    assert result.kappa == pytest.approx((observed - chance) / (1 - chance), abs=1e-12)
    assert (result.n_items, result.n_raters, result.n_items_left_out) == (4, 3, 0)


def test_fleiss_kappa_properties_and_unequal_counts():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 3, size=300).astype(float)
    assert fleiss_kappa(np.tile(truth, (4, 1))).kappa == pytest.approx(1.0)
    noise = rng.integers(0, 3, size=(4, 3000)).astype(float)
    assert abs(fleiss_kappa(noise).kappa) < 0.03
    ragged = np.tile(truth, (4, 1))
    ragged[3, :100] = np.nan  # 100 items with 3 ratings, 200 with 4: the 4-rating items are used
    result = fleiss_kappa(ragged)
    assert (result.n_raters, result.n_items, result.n_items_left_out) == (4, 200, 100)
    assert fleiss_kappa(ragged, n_raters=3).n_items == 100


def test_votes_shown_in_either_orientation_are_comparable_units():
    votes = [
        Vote("p1", "ann", "x", "y", "a"),
        Vote("p1", "bob", "y", "x", "b"),  # the same judgement, sides swapped
        Vote("p2", "ann", "x", "y", "tie"),
        Vote("p2", "bob", "x", "y", "both_bad"),
    ]
    data = vote_reliability_data(votes)
    assert data.matrix.shape == (2, 2)
    assert data.matrix[0, 0] == data.matrix[1, 0]
    assert data.matrix[0, 1] != data.matrix[1, 1]
    with pytest.raises(ValueError, match="twice"):
        vote_reliability_data([*votes, Vote("p1", "ann", "x", "y", "b")])
