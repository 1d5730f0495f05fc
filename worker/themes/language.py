"""Which language a comment is in, decided locally among the few the themes use: no model, no download.

An event may say its language (`language`, ISO 639-1); most do not. The worker then only needs to
choose among the candidate languages (those the themes' terms use), not to identify any language
of the world, and it does so from three kinds of evidence, each token weighed once:

- **stop words** (the stopwordsiso lists): "the", "de", "und", "ja", "que"... A word that is a stop
  word of k candidates counts 1/k for each ("de" is Dutch and Spanish: ½ each);
- **letters** beyond a–z that a language writes (õ: Estonian; ß: German; ñ: Spanish; ä: German and
  Estonian, ½ each), once per token; `¿` and `¡` in the text count for Spanish;
- **spellings**: a few letter groups and endings typical of each of the five languages we were asked
  for (`ij` Dutch, `sch` German, `-ción` Spanish, `-nud` Estonian, `th` English...), half a stop word's
  weight, again split between the candidates that share one.

The language with the highest score wins when it beats the next strictly; no evidence, or a tie, is
*undecided* (None). Undecided comments are matched against every candidate's terms (themes/matcher.py):
a two-word comment is cheap to stem a few times, and "Late delivery" or "Te laat" still finds its theme.
On the labelled comments in tests/themes/comments.py (the demo's 23 and 35 per language) the accuracy
per language is asserted there; docs: the package docstring.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import stopwordsiso

from .text import CACHE_SIZE

#: Letters beyond a–z each language writes (lower case). For a language not listed: the letters of its stop words.
ALPHABETS: dict[str, str] = {
    "en": "",
    "nl": "éèëï",
    "de": "äöüß",
    "et": "õäöüšž",
    "es": "áéíóúñü",
    "fr": "àâæçéèêëîïôœùûüÿ",
    "it": "àèéìíòóù",
    "pt": "áâãàçéêíóôõú",
    "sv": "åäö",
    "fi": "äöå",
    "da": "æøå",
    "no": "æøå",
}

#: Letter groups typical of a language's spelling: `^` marks a word's start, `$` its end.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "en": ("th", "wh", "ght", "ea", "ou", "ck", "ing$", "ed$", "ly$", "y$", "^un"),
    "nl": (
        "ij",
        "oe",
        "ui",
        "aa",
        "ee",
        "oo",
        "uu",
        "ou",
        "ch",
        "sch",
        "cht",
        "^ge",
        "^be",
        "^ver",
        "lijk",
        "heid",
        "tje",
        "ing$",
        "en$",
        "gd$",
    ),
    "de": ("ch", "sch", "cht", "tz", "pf", "eu", "ss", "^ge", "^be", "^ver", "^zu", "ung$", "keit", "lich", "en$"),
    "et": ("aa", "ee", "ii", "oo", "uu", "ää", "kk", "ks$", "nud$", "tud$", "mine$", "mise", "ga$", "st$", "lt$", "sse$"),
    "es": ("^ll", "rr", "qu", "ue", "ción$", "mente$", "ado$", "ido$", "ada$", "ía$", "os$", "as$"),
}

#: Weights in whole units, so that shares add up exactly and a tie is a tie (2520 splits evenly 1 to 10 ways).
UNIT = 2520
STOP_WEIGHT = UNIT
LETTER_WEIGHT = UNIT
SPELLING_WEIGHT = UNIT // 2

#: What one token or feature says: (candidate index, weight) pairs.
Evidence = tuple[tuple[int, int], ...]


class LanguageGuesser:
    """Chooses among `candidates` (ISO 639-1 codes, in order) the language of a comment's tokens.

    Each feature's shares between the candidates are worked out here, once; a token is then weighed
    with a few dict look-ups (and at most three short regex scans), once per spelling seen."""

    def __init__(self, candidates: Sequence[str], cache_size: int = CACHE_SIZE) -> None:
        self.candidates = tuple(dict.fromkeys(candidates))
        self.cache_size = cache_size
        stops = [stopwordsiso.stopwords(code) for code in self.candidates]
        letters = [_alphabet(code, stop) for code, stop in zip(self.candidates, stops, strict=True)]
        spellings = [SPELLINGS.get(code, ()) for code in self.candidates]
        self._stop = {word: self._shares([word in stop for stop in stops], STOP_WEIGHT) for word in set().union(*stops)}
        self._letters = {letter: self._shares([letter in own for own in letters], LETTER_WEIGHT) for letter in frozenset().union(*letters)}
        groups = {
            group: self._shares([group in own for own in spellings], SPELLING_WEIGHT) for group in {g for own in spellings for g in own}
        }
        self._prefixes = _by_length({group[1:]: shares for group, shares in groups.items() if group.startswith("^")})
        self._suffixes = _by_length({group[:-1]: shares for group, shares in groups.items() if group.endswith("$")})
        inner = _by_length({group: shares for group, shares in groups.items() if "^" not in group and "$" not in group})
        # one pattern per length: among groups of one length, at most one can start at a given place
        self._inner = [(re.compile(f"(?=({'|'.join(map(re.escape, table))}))"), table) for table in inner.values()]
        self._spanish = self.candidates.index("es") if "es" in self.candidates else None
        self._evidence: dict[str, Evidence] = {}

    def _shares(self, has: list[bool], weight: int) -> Evidence:
        """`weight` split between the candidates that have a feature."""
        count = sum(has)
        return tuple((index, weight // count) for index, present in enumerate(has) if present)

    def evidence(self, token: str) -> Evidence:
        """What one token (as written) says, cached per spelling."""
        found = self._evidence.get(token)
        if found is None:
            found = self._weigh(token.lower())  # not casefolded: that writes ß as ss
            if len(self._evidence) >= self.cache_size:
                self._evidence.clear()  # a flood of new spellings: start again rather than grow
            self._evidence[token] = found
        return found

    def _weigh(self, word: str) -> Evidence:
        features = [self._stop.get(word)]
        if not word.isascii():
            features += [self._letters.get(letter) for letter in set(word)]
        features += [table.get(word[:length]) for length, table in self._prefixes.items()]
        features += [table.get(word[-length:]) for length, table in self._suffixes.items()]
        for pattern, table in self._inner:
            features += [table[group] for group in set(pattern.findall(word))]
        scores = [0] * len(self.candidates)
        for shares in features:
            for index, weight in shares or ():
                scores[index] += weight
        return tuple((index, score) for index, score in enumerate(scores) if score)

    def scores(self, tokens: Sequence[str], text: str = "") -> list[int]:
        """Each candidate's score for a comment's tokens (as written); `text` for its punctuation."""
        scores = [0] * len(self.candidates)
        known = self._evidence
        for token in tokens:
            found = known.get(token)  # inlined `evidence`: this loop is most of the cost of deciding
            for index, weight in found if found is not None else self.evidence(token):
                scores[index] += weight
        if self._spanish is not None and ("¿" in text or "¡" in text):
            scores[self._spanish] += LETTER_WEIGHT
        return scores

    def guess(self, tokens: Sequence[str], text: str = "") -> str | None:
        """The candidate that scores highest, or None: no candidate, no evidence, or a tie at the top."""
        if len(self.candidates) == 1:
            return self.candidates[0]
        scores = self.scores(tokens, text)
        best = max(scores, default=0)
        if best <= 0 or scores.count(best) > 1:
            return None
        return self.candidates[scores.index(best)]


def _alphabet(code: str, stop: set[str]) -> frozenset[str]:
    """The letters beyond a–z a language writes: ALPHABETS', or else those its stop words use."""
    letters = ALPHABETS.get(code)
    if letters is None:
        letters = "".join(stop)
    return frozenset(char for char in letters if char.isalpha() and not char.isascii())


def _by_length(groups: dict[str, Evidence]) -> dict[int, dict[str, Evidence]]:
    tables: dict[int, dict[str, Evidence]] = {}
    for group, shares in groups.items():
        tables.setdefault(len(group), {})[group] = shares
    return tables
