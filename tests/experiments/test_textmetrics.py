"""Text metrics against hand-computed values (definitions: decodelab/experiments/textmetrics.py)."""

import math

import pytest

from decodelab.experiments.textmetrics import distinct_n, repetition_rate, self_bleu, sentence_bleu, words


def test_words_are_lower_cased_word_runs_and_single_punctuation_marks():
    assert words("Hello, hello world!") == ["hello", ",", "hello", "world", "!"]
    assert words("Ça va?  Très bien…") == ["ça", "va", "?", "très", "bien", "…"]
    assert words("") == []


def test_distinct_n_pools_ngrams_over_a_cells_outputs():
    texts = ["the cat sat", "the cat ran"]
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)  # the, cat, sat, ran of 6 unigrams
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)  # "the cat" twice, never across outputs
    assert distinct_n(["a", "b"], 2) is None  # no bigram at all
    assert distinct_n(["x y", "x y"], 2) == 0.5


def test_repetition_rate_is_the_share_of_repeated_bigrams_in_one_output():
    assert repetition_rate("a b a b a") == pytest.approx(0.5)  # ab ba ab ba: 2 distinct of 4
    assert repetition_rate("one two three") == 0.0
    assert repetition_rate("hello") is None


def test_sentence_bleu_with_bleu_plus_one_smoothing_and_brevity_penalty():
    # p1 = 2/3; p2 = (1+1)/(2+1); p3 = (0+1)/(1+1); p4 = (0+1)/(0+1); equal lengths: BP = 1.
    expected = (2 / 3 * 2 / 3 * 1 / 2 * 1) ** 0.25
    assert sentence_bleu(words("the cat sat"), [words("the cat ran")]) == pytest.approx(expected)
    # Shorter than the reference: BP = exp(1 - 4/2); every precision is 1.
    assert sentence_bleu(words("the cat"), [words("the cat sat on")]) == pytest.approx(math.exp(-1))
    # Counts are clipped to the reference's: p1 = 1/3, p2 = (0+1)/(2+1), p3 = 1/2, p4 = 1.
    assert sentence_bleu(words("the the the"), [words("the cat")]) == pytest.approx((1 / 3 * 1 / 3 * 1 / 2) ** 0.25)
    assert sentence_bleu(words("dog"), [words("the cat")]) == 0.0  # no unigram matches
    assert sentence_bleu([], [words("the cat")]) == 0.0
    # Reference lengths 2 and 4 are equally close to 3: the shorter wins, so c > r and BP = 1
    # (with r = 4 it would be exp(1 - 4/3)); every n-gram is in the longer reference: BLEU = 1.
    assert sentence_bleu(words("a b c"), [words("a b"), words("a b c d")]) == pytest.approx(1.0)


def test_self_bleu_averages_each_output_against_the_others():
    assert self_bleu(["the cat sat", "the cat ran"]) == pytest.approx((2 / 9) ** 0.25)
    assert self_bleu(["same words here", "same words here"]) == pytest.approx(1.0)
    assert self_bleu(["only one"]) is None
    three = self_bleu(["a b c d", "a b c d", "w x y z"])
    assert 0 < three < 1
