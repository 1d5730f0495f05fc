"""Tagging a comment: which themes it mentions, in which language, and its stems for whoever needs them next.

A `ThemeMatcher` is compiled once per ThemeSet (at load and at each hot reload). Per language it keeps
the terms (that language's and `any`'s) as stem sequences indexed by their first stem, and a cache of
token → stem; tagging a comment is then one regex pass, one dict look-up per token for the language
evidence, one for its stem, and one in the index. A term of k words matches where its k stems occur
consecutively; a theme is mentioned when one of its terms matches, and so are its ancestors.

The language: the event's own when it has one (an ISO 639-1 code; one without a stemmer matches the
`any` terms only, its tokens casefolded and without accents), else `LanguageGuesser`'s choice among the
languages the themes use. Undecided (no evidence, or a tie): the comment is stemmed and matched in
every candidate language, and its stems are the first candidate's.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import stopwordsiso

from .language import LanguageGuesser
from .model import ANY, ThemeSet
from .text import CACHE_SIZE, LANGUAGES, StemCache, fold, tokens

NOTHING: frozenset[str] = frozenset()

#: Comments up to this long are remembered with their tagging, the latest REMEMBERED of them: short answers
#: repeat ("Great service, thank you!", "Te laat"), and a repeat then costs one look-up instead of ~6 µs.
REMEMBERED_LENGTH = 160
REMEMBERED = 4096

#: The words of a comment that are tagged: a survey comment is rarely a tenth of this, and a comment of a
#: million made-up words (customer text is untrusted) must not cost seconds of stemming on the worker's loop.
MAX_WORDS = 400


class _Index:
    """One language's terms as stem sequences, by first stem; its stem cache; its stop words."""

    def __init__(self, themes: ThemeSet, language: str | None, cache_size: int) -> None:
        self.language = language
        self.stems = StemCache(language, cache_size)
        first: dict[str, list[tuple[tuple[str, ...], frozenset[str]]]] = {}
        for theme in themes:
            mentioned = frozenset((theme.id, *themes.ancestors(theme.id)))
            for term in [*(theme.terms.get(language, []) if language else []), *theme.terms.get(ANY, [])]:
                stems = self.stems.stems(term)
                first.setdefault(stems[0], []).append((tuple(stems[1:]), mentioned))
        self.first = {stem: tuple(entries) for stem, entries in first.items()}

    def match(self, stems: tuple[str, ...]) -> set[str]:
        found: set[str] = set()
        first = self.first
        for at, stem in enumerate(stems):
            entries = first.get(stem)
            if entries is not None:
                for rest, mentioned in entries:
                    if not rest or stems[at + 1 : at + 1 + len(rest)] == rest:
                        found |= mentioned
        return found

    @cached_property
    def stop(self) -> frozenset[str]:
        return frozenset(stopwordsiso.stopwords(self.language)) if self.language else frozenset()


@dataclass(slots=True)  # not frozen: a frozen dataclass takes 1.3 µs more to build, a tenth of the budget
class Tagging:
    """What one comment says: the themes it mentions, its language, its tokens and their stems. Read-only by convention."""

    themes: frozenset[str]
    language: str | None  # the event's, or the one decided here; None: undecided (matched in every candidate)
    words: tuple[str, ...]  # the tokens as written
    stems: tuple[str, ...]  # each token's stem (undecided: in the first candidate language), accents removed
    stop: frozenset[str] = field(default=NOTHING, repr=False, compare=False)  # the stop words of `language`
    #: The comment's terms for rising complaints (key → as first written), worked out once per tagging: a remembered
    #: comment's tagging is shared, so a repeat costs nothing more (loop/emerging.py fills it).
    terms: dict[str, str] | None = field(default=None, repr=False, compare=False)

    @property
    def keywords(self) -> tuple[str, ...]:
        """The stems of the tokens that are not stop words: what root causes are learned from and suggested by."""
        return tuple(stem for stem, word in zip(self.stems, self.words, strict=True) if fold(word) not in self.stop)

    @property
    def keyword_words(self) -> tuple[str, ...]:
        """Those tokens, casefolded, in the same order: the words a suggestion shows."""
        return tuple(folded for folded in map(fold, self.words) if folded not in self.stop)


class ThemeMatcher:
    """Tags comments with a ThemeSet's themes. Build one per ThemeSet; `tag` is safe from several threads."""

    def __init__(
        self, themes: ThemeSet, languages: Sequence[str] | None = None, cache_size: int = CACHE_SIZE, remember: int = REMEMBERED
    ) -> None:
        self.themes = themes
        #: The candidates when an event has no language: the themes' languages, or those given.
        self.languages = tuple(dict.fromkeys(languages)) if languages is not None else themes.languages
        unknown = [code for code in self.languages if code not in LANGUAGES]
        if unknown:
            raise ValueError(f"no stemmer for {', '.join(unknown)} (known: {', '.join(sorted(LANGUAGES))})")
        self.guesser = LanguageGuesser(self.languages, cache_size)
        self.cache_size = cache_size
        self._indexes: dict[str | None, _Index] = {}
        for language in self.languages or (None,):
            self._index(language)
        self._undecided_stop = frozenset().union(*(stopwordsiso.stopwords(code) for code in self.languages))
        self._seen: dict[tuple[str, str | None], Tagging] = {}  # short comment → its tagging (REMEMBERED_LENGTH)
        self._lock = threading.Lock()
        self.remember = remember  # 0: nothing remembered (bench/themes.py times the tagging itself)

    def _index(self, language: str | None) -> _Index:
        index = self._indexes.get(language)
        if index is None:  # a language the event named that no theme uses: its `any` terms, built once
            index = self._indexes[language] = _Index(self.themes, language if language in LANGUAGES else None, self.cache_size)
        return index

    def tag(self, comment: str | None, language: str | None = None) -> Tagging:
        """The themes `comment` mentions; `language`: the event's ISO 639-1 code, if it has one.

        The same comment always gets the same tagging: a short one is remembered (the result is shared:
        do not change it)."""
        if not comment:
            return Tagging(NOTHING, language, (), ())
        if len(comment) > REMEMBERED_LENGTH or not self.remember:
            return self._tag(comment, language)
        key = (comment, language)
        tagging = self._seen.get(key)
        if tagging is None:
            tagging = self._tag(comment, language)
            with self._lock:  # the oldest goes: cheap, and enough for repeats
                if len(self._seen) >= self.remember:
                    self._seen.pop(next(iter(self._seen)), None)
                self._seen[key] = tagging
        return tagging

    def _tag(self, comment: str, language: str | None) -> Tagging:
        words = tuple(tokens(comment)[:MAX_WORDS])
        if language is None:
            language = self.guesser.guess(words, comment) if self.languages else None
            if language is None and len(self.languages) > 1:
                return self._undecided(words)
        index = self._indexes.get(language) or self._index(language if language in LANGUAGES else None)
        cache = index.stems
        stems = tuple([cache[word] for word in words])
        found = index.match(stems)
        return Tagging(frozenset(found) if found else NOTHING, language, words, stems, index.stop)

    def match(self, comment: str | None, language: str | None = None) -> frozenset[str]:
        """Only the themes (`tag(...).themes`)."""
        return self.tag(comment, language).themes

    def _undecided(self, words: tuple[str, ...]) -> Tagging:
        found: set[str] = set()
        first: tuple[str, ...] = ()
        for number, language in enumerate(self.languages):
            index = self._indexes[language]
            cache = index.stems
            stems = tuple([cache[word] for word in words])
            found |= index.match(stems)
            if number == 0:
                first = stems
        return Tagging(frozenset(found) if found else NOTHING, None, words, first, self._undecided_stop)
