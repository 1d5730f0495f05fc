"""A suggested root cause: learned from resolved tasks, the same on every replica, nothing until enough examples.

The examples are resolved tasks as a person would have closed them: a customer's comment (tagged by
the real matcher, so stop words are left out and words are stemmed) and the root cause chosen.
"""

from __future__ import annotations

import json
import random

import pytest

from worker.themes import DEFAULT_MIN_EXAMPLES, CauseCounts, Suggestion, ThemeMatcher, build_themes

MATCHER = ThemeMatcher(build_themes([[{"id": "t", "label": "T", "terms": {"en": ["x"], "nl": ["x"], "de": ["x"]}}]]))

RESOLVED: list[tuple[str, str]] = [
    ("The parcel arrived three days late", "shipping-delay"),
    ("Delivery was delayed again", "shipping-delay"),
    ("My order never arrived, tracking says in transit", "shipping-delay"),
    ("Still waiting for the package, it is very late", "shipping-delay"),
    ("Courier delayed the delivery twice", "shipping-delay"),
    ("Het pakket kwam te laat", "shipping-delay"),
    ("Late delivery, nobody told us", "shipping-delay"),
    ("Shipment stuck in transit for a week", "shipping-delay"),
    ("I was charged twice for one invoice", "billing-error"),
    ("The invoice amount is wrong", "billing-error"),
    ("Wrong VAT on my invoice", "billing-error"),
    ("You charged my card twice this month", "billing-error"),
    ("Die Rechnung war falsch", "billing-error"),
    ("Refund for the double charge never came", "billing-error"),
    ("Invoice shows the old price", "billing-error"),
    ("The app crashes when I upload a photo", "product-defect"),
    ("The lamp arrived broken", "product-defect"),
    ("Screen broken after two days", "product-defect"),
    ("App keeps crashing on login", "product-defect"),
    ("The handle broke off the first time I used it", "product-defect"),
    ("Support was rude and did not help", "support-experience"),
    ("Nobody answered my ticket for a week", "support-experience"),
    ("The agent was rude on the phone", "support-experience"),
    ("Waited an hour on the phone for support", "support-experience"),
]


def keywords(comment: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    tagging = MATCHER.tag(comment)
    return tagging.keywords, tagging.keyword_words


def learned(examples: list[tuple[str, str]] = RESOLVED) -> CauseCounts:
    counts = CauseCounts()
    for comment, cause in examples:
        counts.add(cause, keywords(comment)[0])
    return counts


def suggest(counts: CauseCounts, comment: str, min_examples: int = DEFAULT_MIN_EXAMPLES) -> Suggestion | None:
    stems, words = keywords(comment)
    return counts.suggest(stems, words, min_examples=min_examples)


@pytest.mark.parametrize(
    ("comment", "cause", "term"),
    [
        ("My parcel is late again", "shipping-delay", "late"),
        ("The delivery has been delayed for days", "shipping-delay", "delayed"),
        ("I was charged twice!", "billing-error", "charged"),
        ("The invoice is wrong", "billing-error", "invoice"),
        ("Your app crashed and the cup arrived broken", "product-defect", "broken"),
        ("The support agent was really rude", "support-experience", "rude"),
    ],
)
def test_a_new_comment_gets_the_cause_its_words_go_with_and_those_words(comment: str, cause: str, term: str) -> None:
    suggestion = suggest(learned(), comment)
    assert suggestion is not None
    assert suggestion.root_cause == cause
    assert term in suggestion.terms and len(suggestion.terms) <= 3
    assert 0.0 < suggestion.confidence <= 1.0


def test_nothing_is_suggested_before_min_examples_resolved_tasks() -> None:
    assert len(RESOLVED) >= DEFAULT_MIN_EXAMPLES == 20
    assert suggest(learned(RESOLVED[:19]), "late again") is None
    assert suggest(learned(RESOLVED[:20]), "late again") is not None
    assert suggest(learned(RESOLVED[:5]), "late again", min_examples=5) is not None
    assert suggest(learned(), "late again", min_examples=25) is None
    assert CauseCounts().suggest(["late"], min_examples=0) is None, "no example at all: nothing to suggest"


def test_counts_merged_in_any_order_give_the_same_model_and_the_same_suggestion_to_the_bit() -> None:
    """Replicas sum records in whatever order they read them: the model and its answers must not depend on it."""
    shuffled = RESOLVED[:]
    random.Random(3).shuffle(shuffled)
    parts = [learned(shuffled[n::3]) for n in range(3)]
    one = CauseCounts()
    for part in parts:
        one.merge(part)
    other = parts[2] + parts[0] + parts[1]
    assert one == other == learned()
    assert json.dumps(one.to_dict()) == json.dumps(learned().to_dict()), "the same bytes on the state topic"
    for comment in ["late invoice", "broken app", "rude courier was late", "nothing known here"]:
        assert suggest(one, comment) == suggest(other, comment) == suggest(learned(), comment)


def test_a_tie_goes_to_the_cause_first_in_alphabetical_order() -> None:
    counts = CauseCounts()
    for _ in range(10):
        counts.add("zeta", ["late"])
        counts.add("alpha", ["late"])
    suggestion = counts.suggest(["late"])
    assert suggestion == Suggestion("alpha", 0.5, ())


def test_clear_comments_are_surer_than_ambiguous_ones() -> None:
    counts = learned()
    clear, mixed = suggest(counts, "parcel late, delayed delivery"), suggest(counts, "late invoice")
    assert clear is not None and mixed is not None
    assert clear.confidence > 0.9 > mixed.confidence


def test_a_comment_of_unknown_words_gets_the_commonest_cause_and_no_terms() -> None:
    suggestion = suggest(learned(), "Zzyzx qwerty")
    assert suggestion == Suggestion("shipping-delay", suggestion.confidence if suggestion else 0.0, ())
    assert suggestion is not None and suggestion.confidence == pytest.approx(8 / 24, abs=0.001)


def test_tasks_resolved_without_comments_count_towards_the_prior_only() -> None:
    counts = CauseCounts()
    for n in range(20):
        counts.add("pricing" if n % 4 else "onboarding", [])
    assert counts.suggest([]) == Suggestion("pricing", 0.75, ())
    assert counts.suggest(["late"]) == Suggestion("pricing", 0.75, ())


def test_the_state_topic_form_round_trips_and_refuses_garbage() -> None:
    counts = learned()
    data = json.loads(json.dumps(counts.to_dict()))
    assert CauseCounts.from_dict(data) == counts
    assert data["tasks"]["billing-error"] == 7 and data["stems"]["invoic"]["billing-error"] == 4
    for bad in [
        {"tasks": {"a": -1}},
        {"tasks": {"a": 1.5}},
        {"tasks": []},
        {"stems": {"late": 3}},
        {"stems": {"late": {"a": True}}},
        {"tasks": {"": 1}},
    ]:
        with pytest.raises(ValueError, match="cause counts"):
            CauseCounts.from_dict(bad)


def test_remove_takes_back_an_add_and_never_goes_below_zero() -> None:
    counts = learned()
    stems = keywords("Shipment late again")[0]
    counts.add("billing-error", stems)
    counts.remove("billing-error", stems)
    assert counts == learned()
    with pytest.raises(ValueError):
        counts.remove("pricing", stems)
    with pytest.raises(ValueError):
        counts.remove("billing-error", ["never-seen-stem"])
    assert counts == learned(), "a refused remove changes nothing"


def test_the_suggestion_as_followup_opened_carries_it() -> None:
    suggestion = suggest(learned(), "My parcel is late again")
    assert suggestion is not None
    assert suggestion.as_dict() == {"root_cause": "shipping-delay", "confidence": suggestion.confidence, "terms": list(suggestion.terms)}
    assert json.loads(json.dumps(suggestion.as_dict()))["root_cause"] == "shipping-delay"


def test_a_lenient_remove_goes_down_to_zero_and_no_further() -> None:
    counts = CauseCounts()
    counts.add("pricing", ["price", "price", "high"])
    counts.remove("pricing", ["price", "price", "price", "unknown"], strict=False)
    assert counts.tasks == {} and counts.stems == {"high": {"pricing": 1}}
    counts.remove("pricing", ["high"], strict=False)
    assert counts == CauseCounts() and counts.to_dict() == {"tasks": {}, "stems": {}}
    counts.remove("billing-error", ["high"], strict=False)  # never had it: nothing to take
    assert counts == CauseCounts()


def test_prune_keeps_the_commonest_stems_and_the_model_consistent() -> None:
    counts = learned()
    before = len(counts.stems)
    ranked = sorted(counts.stems, key=lambda stem: (-sum(counts.stems[stem].values()), stem))
    assert counts.prune(before) == 0 and counts.prune(10) == before - 10
    assert sorted(counts.stems) == sorted(ranked[:10])
    again = CauseCounts.from_dict(counts.to_dict())  # the totals are what the counts left say
    assert again == counts and suggest(again, "My parcel is late again") == suggest(counts, "My parcel is late again")


def test_a_theme_as_a_feature_carries_a_cause_across_languages_and_is_never_a_term() -> None:
    late = CauseCounts.theme("shipping-delay")
    assert late == "#shipping-delay"
    counts = CauseCounts()
    counts.add("shipping-delay", [*keywords("Het pakket kwam te laat")[0], late])
    counts.add("billing-error", [*keywords("Die Rechnung war falsch")[0], CauseCounts.theme("wrong-invoice")])
    stems, words = keywords("The parcel is delayed")
    suggestion = counts.suggest([*stems, late], [*words, ""], min_examples=2)
    assert suggestion is not None and suggestion.root_cause == "shipping-delay" and suggestion.terms == ()
    assert counts.suggest([*stems], [*words], min_examples=2) == Suggestion("billing-error", 0.5, ())  # a tie without it
