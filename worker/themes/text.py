"""Words as themes see them: tokens, each language's stems with their accents removed, and a cache of both.

Exactly what issue 21 says: a comment's tokens are the maximal runs of Unicode word characters
(`\\w+`), casefolded; a token's stem is the Snowball stem of its language (snowballstemmer, which
expects lower-case NFC text), with the accents then removed. A term is tokenised and stemmed the
same way, so "Vertragingen" in a comment meets "vertraging" in a rules file.

Why a cache: snowballstemmer is pure Python, 25–50 µs a word, and customer comments reuse a small
vocabulary. A `StemCache` maps a token *as written* to its stem, so casefolding, stemming and
accent removal happen once per (language, spelling) and a repeat costs one dict look-up (~40 ns).
It is bounded: past `size` entries the oldest goes (a FIFO; a word still in use comes back at once).
"""

from __future__ import annotations

import re
import threading
import unicodedata

import snowballstemmer  # type: ignore[import-untyped]  # ships no types and there is no stubs package

#: A token: a maximal run of Unicode word characters (letters, digits, marks of a letter, `_`).
WORD = re.compile(r"\w+")
#: Longer tokens are no word of any language (Estonian compounds stay well below): they are not stemmed.
MAX_WORD_LENGTH = 48

#: ISO 639-1 code → the Snowball algorithm for it (those snowballstemmer has; `LANGUAGES` keeps the installed ones).
SNOWBALL_NAMES: dict[str, str] = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "eo": "esperanto",
    "es": "spanish",
    "et": "estonian",
    "eu": "basque",
    "fa": "persian",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "st": "sesotho",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}

#: The languages themes may name: each has a Snowball stemmer in the installed snowballstemmer.
LANGUAGES: frozenset[str] = frozenset(code for code, name in SNOWBALL_NAMES.items() if name in snowballstemmer.algorithms())

#: Distinct spellings kept per language; a comment vocabulary is far smaller, a flood of random tokens cannot grow it.
CACHE_SIZE = 20_000


def normalize(text: str) -> str:
    """NFC: a decomposed accent (e + U+0301) would otherwise end a `\\w+` run in the middle of its word."""
    return text if text.isascii() or unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def tokens(text: str) -> list[str]:
    """The tokens as written (NFC): what a `StemCache` is keyed by. `fold` each for the issue's tokens."""
    return WORD.findall(normalize(text))


def fold(token: str) -> str:
    """Casefolded, in NFC (casefolding can decompose: 'İ' becomes 'i' and a combining dot)."""
    folded = token.casefold()
    return folded if folded.isascii() else unicodedata.normalize("NFC", folded)


def tokenize(text: str) -> list[str]:
    """The issue's tokens: maximal runs of Unicode word characters, casefolded."""
    return [fold(token) for token in tokens(text)]


def strip_accents(word: str) -> str:
    """Without combining marks: 'envío' → 'envio', 'õ' → 'o' (a letter with no decomposition, 'ß' or 'ø', stays)."""
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFD", word)
    return unicodedata.normalize("NFC", "".join(char for char in decomposed if not unicodedata.combining(char)))


class StemCache(dict[str, str]):
    """token as written → its stem in one language (casefolded, stemmed, accents removed), computed on first use.

    `cache[token]` is the whole hot path: a hit is the dict's own look-up, a miss calls `__missing__`.
    `language` None (a language without a stemmer) folds and strips accents only. A stemmer object is not
    thread-safe (snowballstemmer's README), so a miss stems under a lock; hits take none.
    """

    def __init__(self, language: str | None, size: int = CACHE_SIZE) -> None:
        super().__init__()
        if language is not None and language not in LANGUAGES:
            raise ValueError(f"no stemmer for language {language!r} (known: {', '.join(sorted(LANGUAGES))})")
        self.language = language
        self.size = size
        self._stemmer = snowballstemmer.stemmer(SNOWBALL_NAMES[language]) if language is not None else None
        self._lock = threading.Lock()

    def stem(self, word: str) -> str:
        """The stem of one casefolded word, uncached."""
        if self._stemmer is None:
            return strip_accents(word)
        with self._lock:
            stem: str = self._stemmer.stemWord(word)
        return strip_accents(stem)

    def __missing__(self, token: str) -> str:
        if token.isascii() and token.isdigit():  # order numbers, amounts: every stemmer leaves them be; not worth a place
            return token
        if len(token) > MAX_WORD_LENGTH:  # no word: a URL's run, a made-up string; folded, not stemmed or cached
            return strip_accents(fold(token))
        stem = self.stem(fold(token))
        with self._lock:
            if len(self) >= self.size:
                self.pop(next(iter(self)), None)
            self[token] = stem
        return stem

    def stems(self, text: str) -> list[str]:
        """The stems of a text's tokens, in order (a term: its words' stems)."""
        return [self[token] for token in tokens(text)]
