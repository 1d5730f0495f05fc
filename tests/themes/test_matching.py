"""Which themes a comment mentions: the issue's matching rule, in each of the five languages.

Each test states what an ops person who wrote the theme would expect from a real comment: word
forms of the same stem, accents typed or not, phrases of several words, `any` terms, parents.
"""

from __future__ import annotations

import pytest

from worker.themes import ThemeMatcher, ThemeSet, build_themes, strip_accents, tokenize

THEMES: list[dict[str, object]] = [
    {"id": "delivery", "label": "Delivery"},
    {
        "id": "shipping-delay",
        "label": "Shipping delay",
        "parent": "delivery",
        "terms": {
            "en": ["late", "delay", "never arrived"],
            "nl": ["vertraging", "te laat"],
            "et": ["hilinemine", "hilines"],
            "de": ["Verspätung", "zu spät"],
            "es": ["retraso", "envío tardío"],
            "any": ["PostNL"],
        },
    },
    {
        "id": "damaged",
        "label": "Arrived damaged",
        "parent": "delivery",
        "terms": {"en": ["broken", "damaged"], "nl": ["kapot"], "et": ["katki"], "de": ["beschädigt"], "es": ["roto"]},
    },
    {"id": "billing", "label": "Billing"},
    {
        "id": "wrong-invoice",
        "label": "Wrong invoice",
        "parent": "billing",
        "terms": {
            "en": ["wrong invoice", "charged twice"],
            "nl": ["factuur klopt niet"],
            "et": ["vale arve"],
            "de": ["Rechnung falsch"],
            "es": ["factura incorrecta", "envío cobrado"],
        },
    },
]


@pytest.fixture(scope="module")
def themes() -> ThemeSet:
    return build_themes([THEMES])


@pytest.fixture(scope="module")
def matcher(themes: ThemeSet) -> ThemeMatcher:
    return ThemeMatcher(themes)


DELAY = {"shipping-delay", "delivery"}


@pytest.mark.parametrize(
    ("comment", "language"),
    [
        # English: one stem for several forms, a phrase of two words
        ("The parcel was delayed by a week", "en"),
        ("Delays every single time", "en"),
        ("My order never arrived.", "en"),
        ("LATE AGAIN!!", "en"),
        # Dutch: plural, a two-word phrase
        ("Weer vertragingen bij de bezorging", "nl"),
        ("Het pakket kwam te laat", "nl"),
        # Estonian: the case endings of hilinemine, the past tense hilines
        ("Tarne hilines kaks päeva", "et"),
        ("Olen hilinemisega väga rahulolematu", "et"),
        ("Hilinemise pärast jäi üritus ära", "et"),
        # German: umlauts typed or not, a phrase
        ("Die Lieferung kam mit Verspätung", "de"),
        ("Schon wieder Verspaetungen? Nein: Verspatungen ohne Ende", "de"),
        ("Das Paket kam zu spät", "de"),
        # Spanish: accents typed or not, plural
        ("Otro retraso más", "es"),
        ("Retrasos constantes con los pedidos", "es"),
        ("Un envio tardio, otra vez", "es"),
        ("Un envío tardío, otra vez", "es"),
    ],
)
def test_a_comment_mentions_the_theme_in_its_language(matcher: ThemeMatcher, comment: str, language: str) -> None:
    tagging = matcher.tag(comment, language)
    assert tagging.themes == DELAY
    assert matcher.tag(comment).themes == DELAY, "the same without the event's language (decided here)"


def test_german_umlauts_typed_as_ae_are_another_word_but_the_plain_vowel_matches(matcher: ThemeMatcher) -> None:
    """Accents are removed from the stem: 'Verspatung' meets 'Verspätung'; 'ae' is not 'ä' (the stemmer's business)."""
    assert matcher.match("Verspatung", "de") == DELAY
    assert matcher.match("Verspätungen", "de") == DELAY


@pytest.mark.parametrize(
    ("comment", "language"),
    [
        ("The delivery was on time", "en"),  # "late" nowhere
        ("Arrived, never mind the box", "en"),  # "never" and "arrived", but not consecutive
        ("Never, it arrived", "en"),
        ("Het pakket kwam laat", "nl"),  # "laat" alone is not "te laat"
        ("Te vroeg, niet laat", "nl"),
        ("Das Paket war spät dran", "de"),  # "spät" alone is not "zu spät"
        ("Latency of the API is fine", "en"),  # a longer word with "late" in it is another stem
    ],
)
def test_a_phrase_matches_only_as_consecutive_stems_and_a_word_only_whole(matcher: ThemeMatcher, comment: str, language: str) -> None:
    assert matcher.match(comment, language) == frozenset()


def test_a_stem_shared_by_two_forms_matches_both_and_casefolding_ignores_case(matcher: ThemeMatcher) -> None:
    for comment in ["delayed", "delays", "DELAYING", "Delay"]:
        assert matcher.match(comment, "en") == DELAY, comment
    assert matcher.tag("delayed", "en").stems == matcher.tag("DELAYS", "en").stems == ("delay",)


def test_the_terms_of_another_language_do_not_match(matcher: ThemeMatcher) -> None:
    """'retraso' is a Spanish term: an English comment that says it is not stemmed as Spanish, nor matched."""
    assert matcher.match("retraso", "es") == DELAY
    assert matcher.match("retraso", "en") == frozenset()
    assert matcher.match("te laat", "en") == frozenset()


def test_any_terms_match_in_every_language_and_in_one_without_a_stemmer(matcher: ThemeMatcher) -> None:
    for language in ["en", "nl", "et", "de", "es", "fr", "ja", None]:
        assert matcher.match("Weer PostNL...", language) == DELAY, language
        assert matcher.match("postnl's app", language) == DELAY, language
    assert matcher.match("PostNLs", "en") == DELAY, "stemmed like any English word"
    assert matcher.match("PostNLExpress", "en") == frozenset(), "a longer word is another word"


def test_a_parent_is_mentioned_with_each_child_and_not_by_itself(matcher: ThemeMatcher) -> None:
    assert matcher.match("Kast oli katki", "et") == {"damaged", "delivery"}
    assert matcher.match("Vale arve", "et") == {"wrong-invoice", "billing"}
    assert matcher.match("Broken and late", "en") == {"damaged", "shipping-delay", "delivery"}
    assert matcher.match("Delivery and billing were fine", "en") == frozenset(), "a parent's label is no term"


def test_a_grandparent_is_mentioned_too() -> None:
    themes = build_themes(
        [
            [
                {"id": "logistics", "label": "Logistics"},
                {"id": "delivery", "label": "Delivery", "parent": "logistics"},
                {"id": "late", "label": "Late", "parent": "delivery", "terms": {"en": ["late"]}},
            ]
        ]
    )
    assert ThemeMatcher(themes).match("late again", "en") == {"late", "delivery", "logistics"}


def test_a_multi_word_term_in_a_sentence_and_one_word_shared_by_two_terms(matcher: ThemeMatcher) -> None:
    assert matcher.match("La factura incorrecta otra vez, y el envío cobrado dos veces", "es") == {"wrong-invoice", "billing"}
    assert matcher.match("Ik heb de factuur bekeken en de factuur klopt niet", "nl") == {"wrong-invoice", "billing"}
    assert matcher.match("Die Rechnung ist schon wieder falsch", "de") == frozenset()


def test_tokens_and_accents_as_the_issue_defines_them() -> None:
    assert tokenize("Don't e-mail me: ÉÉN keer, Straße!") == ["don", "t", "e", "mail", "me", "één", "keer", "strasse"]
    assert tokenize("envi\u0301o") == ["envío"], "a decomposed accent stays in its word"
    assert tokenize("İstanbul") == ["i̇stanbul"], "casefolded after the word is found, not split by its dot"
    assert [strip_accents(word) for word in ["envío", "väga", "õun", "Straße", "øl"]] == ["envio", "vaga", "oun", "Straße", "øl"]


def test_a_comment_of_no_language_at_all_is_matched_in_every_candidate(matcher: ThemeMatcher) -> None:
    """Two words give no evidence of a language: the comment is tried in each of the themes' languages."""
    assert matcher.tag("Tarne hilines").language is None
    assert matcher.match("Tarne hilines") == DELAY
    assert matcher.match("Vertraging!") == DELAY
    assert matcher.match("Verspätung!") == DELAY


def test_the_tagging_carries_the_stems_and_the_language_decided(matcher: ThemeMatcher) -> None:
    tagging = matcher.tag("De levering was weer te laat, ik wil mijn geld terug")
    assert tagging.language == "nl"
    assert tagging.words[:3] == ("De", "levering", "was")
    assert tagging.stems[:3] == ("de", "leveer", "was")
    assert "leveer" in tagging.keywords and "de" not in tagging.keywords, "stop words are no keywords"
    assert len(tagging.keywords) == len(tagging.keyword_words) and "levering" in tagging.keyword_words


def test_no_comment_mentions_nothing(matcher: ThemeMatcher) -> None:
    for comment in [None, "", "  ", "!!! ???", "👍"]:
        assert matcher.match(comment) == frozenset()


def test_themes_with_one_language_decide_nothing_and_themes_with_none_match_any_terms() -> None:
    english = ThemeMatcher(build_themes([[{"id": "late", "label": "Late", "terms": {"en": ["late"]}}]]))
    assert english.tag("Sehr spät, late").language == "en"
    brands = ThemeMatcher(build_themes([[{"id": "dhl", "label": "DHL", "terms": {"any": ["DHL Express"]}}]]))
    assert brands.match("Met DHL express verstuurd") == {"dhl"}
    assert brands.match("DHL, express") == {"dhl"}, "punctuation between the words: still consecutive tokens"


def test_a_stem_cache_stays_within_its_size() -> None:
    matcher = ThemeMatcher(build_themes([[{"id": "late", "label": "Late", "terms": {"en": ["late"]}}]]), cache_size=50)
    for n in range(500):
        matcher.tag(f"word{n} late", "en")
    assert matcher.match("late", "en") == {"late"}
    assert max(len(index.stems) for index in matcher._indexes.values()) <= 50
