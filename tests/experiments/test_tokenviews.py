from decodelab.experiments.tokenviews import acceptance_histogram, first_divergence, token_diff, token_texts
from tests.experiments.support import trace_for


def test_first_divergence_is_the_length_of_the_common_prefix():
    assert first_divergence([1, 2, 3], [1, 2, 4]) == 2
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    assert first_divergence([5], [6]) == 0
    assert first_divergence([1, 2], [1, 2]) is None


def test_token_diff_aligns_token_ids_and_marks_the_first_divergence_on_both_sides():
    a_ids, b_ids = [1, 2, 3, 4, 5], [1, 2, 9, 4, 5, 6]
    diff = token_diff(a_ids, ["The", " cat", " sat", " on", " it"], b_ids, ["The", " cat", " ran", " on", " it", "."])
    assert diff["first_divergence"] == 2 and not diff["identical"]
    assert [t["op"] for t in diff["a"]] == ["equal", "equal", "replace", "equal", "equal"]
    assert [t["op"] for t in diff["b"]] == ["equal", "equal", "replace", "equal", "equal", "insert"]
    assert [t["index"] for t in diff["a"] if t["first"]] == [2]
    assert [t["text"] for t in diff["b"] if t["first"]] == [" ran"]
    assert [(b["op"], b["a"], b["b"]) for b in diff["blocks"]] == [
        ("equal", "The cat", "The cat"),
        ("replace", " sat", " ran"),
        ("equal", " on it", " on it"),
        ("insert", "", "."),
    ]
    assert diff["common_tokens"] == 4 and diff["similarity"] == round(2 * 4 / 11, 4)
    same = token_diff([1, 2], ["a", "b"], [1, 2], ["a", "b"])
    assert same["identical"] and same["first_divergence"] is None and not any(t["first"] for t in same["a"])


def test_token_texts_come_from_the_trace_or_show_ids():
    assert token_texts([100, 101], trace_for(["Hi", "!"])) == ["Hi", "!"]
    assert token_texts([7, 8], None) == ["⟨7⟩", "⟨8⟩"]


def test_acceptance_histogram_counts_verification_steps_by_accepted_drafts():
    labels = ["target", "accepted", "accepted", "corrected", "accepted", "bonus", "target", "corrected", "accepted"]
    trace = trace_for([str(i) for i in range(len(labels))], spec=labels)
    # steps: 2 accepted + corrected, 1 + bonus, 0 + corrected, 1 accepted then the output ended
    assert acceptance_histogram(trace) == {0: 1, 1: 2, 2: 1}
    assert acceptance_histogram(trace_for(["a", "b"])) is None
    assert acceptance_histogram(None) is None
