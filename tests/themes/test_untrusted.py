"""Customer text is untrusted: a comment of a million made-up words is tagged on its first MAX_WORDS words,
and a token no language has (a URL's run, a 10 kB string) is folded, not stemmed or cached."""

from __future__ import annotations

from worker.themes import ThemeMatcher, build_themes
from worker.themes.matcher import MAX_WORDS
from worker.themes.text import MAX_WORD_LENGTH, StemCache

THEMES = build_themes([[{"id": "late", "label": "Late", "terms": {"en": ["late"], "any": ["zzz" * 20]}}]])


def test_only_the_first_words_of_a_huge_comment_are_tagged() -> None:
    matcher = ThemeMatcher(THEMES)
    filler = " ".join(f"w{n}x" for n in range(MAX_WORDS - 1))
    assert matcher.match(f"{filler} late", "en") == {"late"}  # the last word tagged
    assert matcher.match(f"{filler} word late", "en") == frozenset()  # one beyond
    assert len(matcher.tag(" ".join(f"q{n}" for n in range(1_000_000)), "en").words) == MAX_WORDS


def test_a_token_longer_than_any_word_is_folded_not_stemmed_or_cached() -> None:
    cache = StemCache("en")
    huge = "Ünbelievable" * 1000
    assert len(huge) > MAX_WORD_LENGTH
    assert cache[huge] == "unbelievable" * 1000  # casefolded, accents removed, not stemmed
    assert huge not in cache
    assert ThemeMatcher(THEMES).match("ZZZ" * 20, "nl") == {"late"}  # a long `any` term still matches as written
