"""Text metrics of outputs: diversity within a cell (distinct-n, self-BLEU) and repetition.

Pure functions of strings, no Django. Definitions:

Tokenisation (``words``): lower-cased, Unicode-aware; every run of word characters (``\\w+``)
is a token and every other non-space character is a token of its own. So
``"Hello, hello world!"`` -> ``["hello", ",", "hello", "world", "!"]``. Word tokens (not the
model's token ids) make the numbers comparable across models and tokenizers.

distinct-n (Li et al. 2016), over the outputs of one cell (one prompt x one configuration,
every sample and returned sequence): the number of distinct n-grams divided by the number of
n-grams, pooled over the outputs. n-grams never cross output boundaries. ``None`` when the
outputs have no n-gram at all.

self-BLEU (Zhu et al. 2018, Texygen): each output in turn is the hypothesis and all the other
outputs of the cell are its references; self-BLEU is the mean of these sentence BLEU scores.
Higher = the samples are more alike (less diverse). Needs at least 2 outputs (else ``None``).
Sentence BLEU here: orders 1 to 4 with uniform weights; clipped n-gram precision p_n = m_n / l_n
(m_n: hypothesis n-grams matched, each clipped to its largest count in any single reference;
l_n: hypothesis n-grams); smoothing "BLEU+1" of Lin & Och (2004): for n >= 2,
p_n = (m_n + 1) / (l_n + 1), p_1 unsmoothed; brevity penalty BP = 1 if c > r else exp(1 - r/c),
with c the hypothesis length and r the reference length closest to c (the shorter on a tie).
BLEU = BP x exp(mean_n log p_n); 0 when the hypothesis is empty or p_1 = 0.

repetition rate (seq-rep-n, Welleck et al. 2019, with n = 2), per output: the share of the
output's n-grams that repeat an earlier n-gram of the same output,
1 - distinct n-grams / n-grams. 0 = no bigram occurs twice. ``None`` when the output has fewer
than n tokens.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
BLEU_MAX_ORDER = 4
REPETITION_N = 2


def words(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    grams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(grams)) / len(grams) if grams else None


def repetition_rate(text: str, n: int = REPETITION_N) -> float | None:
    grams = ngrams(words(text), n)
    return 1 - len(set(grams)) / len(grams) if grams else None


def sentence_bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """BLEU of one tokenised hypothesis against tokenised references (definition above)."""
    c = len(hypothesis)
    if c == 0 or not references:
        return 0.0
    log_sum = 0.0
    for n in range(1, BLEU_MAX_ORDER + 1):
        hyp = Counter(ngrams(hypothesis, n))
        max_ref: Counter[tuple[str, ...]] = Counter()
        for ref in references:
            for gram, count in Counter(ngrams(ref, n)).items():
                max_ref[gram] = max(max_ref[gram], count)
        matched = sum(min(count, max_ref[gram]) for gram, count in hyp.items())
        total = sum(hyp.values())
        if n == 1:
            if matched == 0:
                return 0.0
            p = matched / total
        else:
            p = (matched + 1) / (total + 1)
        log_sum += math.log(p)
    r = min((len(ref) for ref in references), key=lambda length: (abs(length - c), length))
    bp = 1.0 if c > r else math.exp(1 - r / c)
    return bp * math.exp(log_sum / BLEU_MAX_ORDER)


def self_bleu(texts: Sequence[str]) -> float | None:
    if len(texts) < 2:
        return None
    tokenised = [words(t) for t in texts]
    scores = [sentence_bleu(hyp, tokenised[:i] + tokenised[i + 1 :]) for i, hyp in enumerate(tokenised)]
    return sum(scores) / len(scores)
