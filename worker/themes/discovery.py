"""New themes, suggested from the comments no theme covers: candidate themes ops can paste into a rules file.

Why: themes are written by hand, so a complaint nobody thought of stays invisible until someone reads
the raw comments. This reads them: the commented answers are tagged as the worker tags them (an
answer a theme mentions is *covered* and left out), and the rest are grouped by the words they share.

**Terms.** Each uncovered comment's terms are its stems (the worker's tokens and Snowball stems) and
its two-stem phrases (two consecutive tokens), leaving out stop words (stopwordsiso's list of the
comment's language), numbers and one-letter tokens. Only terms in two or more of them count. A term
is shown as written most often (a capital that only starts a sentence does not count; a tie: the
first in alphabetical order), in each language it was seen in; under `any` only where none is known.

**Grouping** (seeded clustering with c-TF-IDF profiles, like k-means on word sets):

1. A term's weight in a group is c-TF-IDF: the share of the group's comments that have it, times
   log(1 + all commented answers / those that have it). The covered comments count in the second
   part, so words common across the whole feed ("order", "days") weigh little.
2. Seeds: the terms in at least `min_count` uncovered comments, best first by comments × idf. A term
   seeds a group when it has a *companion* (another term in a fifth of its comments, which is itself
   with it in at least half of its own: a complaint's words go together, a word any comment may use
   goes with none in particular) and at most half of its comments already have an earlier seed (more:
   the same complaint again). Each group starts as its seed's comments.
3. Rounds: each group's top terms are its `terms` best by weight (a phrase only where neither of its
   words is a top term already); each comment joins, among the groups whose top terms it has, the one
   where its terms weigh most, itself left out (a tie: the earlier group), or none; a group under
   `min_count` comments is dropped (its comments go elsewhere next round), and two groups with two top
   terms in common merge. Until under 1 % of the comments move (at most ROUNDS).

Comments in different languages meet only through the words they share (brands, places, "app",
"update"): the same complaint in two languages without one comes out as two candidates. A candidate's
count is how many uncovered comments its terms would tag (each counted once); its examples are those
with most of its top terms, shortest first. Deterministic and independent of the order of the answers:
every choice is a sort with an explicit tie-breaker (text last), every sum runs in sorted order.
Candidate languages for a comment without one: the themes' languages, those the answers carry, and
DEFAULT_LANGUAGES.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, NamedTuple

import stopwordsiso
import yaml

from .matcher import Tagging, ThemeMatcher
from .model import ANY, ThemeSet
from .text import LANGUAGES, WORD, StemCache, fold, normalize, strip_accents, tokenize

MIN_COUNT = 3  # comments a candidate needs
MAX_CANDIDATES = 10
TERMS = 5  # top terms per candidate
EXAMPLES = 3
EXAMPLE_CHARS = 120  # an example comment is cut to this, in a YAML comment
ROUNDS = 20  # assignment rounds at most (they settle in a few)
#: Tried for a comment without a language, after the themes' and the answers' own: the five the worker was built for.
DEFAULT_LANGUAGES = ("en", "nl", "de", "es", "et")


class Answer(NamedTuple):
    """What discovery reads of an answer: its comment, its language (ISO 639-1) if it says, and whether unhappy."""

    comment: str | None
    language: str | None = None
    unhappy: bool = False


@dataclass(frozen=True)
class Candidate:
    """A suggested theme: `terms` as a rules file writes them, and what it is based on."""

    id: str
    label: str
    terms: dict[str, list[str]]  # language (or `any`) → top terms as written there
    count: int  # uncovered comments it groups
    unhappy: int  # of which unhappy
    top_terms: tuple[tuple[str, int], ...]  # (as written, comments that have it), best first
    examples: tuple[str, ...]  # up to EXAMPLES comments, most typical first
    keys: tuple[str, ...] = ()  # the top terms' stems ("zipper", "login fail")

    def as_theme(self) -> dict[str, Any]:
        """One `themes:` entry."""
        return {"id": self.id, "label": self.label, "terms": self.terms}


@dataclass(frozen=True)
class Discovery:
    """The candidates, and what they were found among (for a summary line)."""

    candidates: list[Candidate]
    answers: int
    commented: int
    covered: int  # commented answers an existing theme mentions
    grouped: int  # uncovered comments in a candidate (before `max_candidates` cuts)

    @property
    def uncovered(self) -> int:
        return self.commented - self.covered


@dataclass(frozen=True)
class _Doc:
    text: str
    language: str | None  # where its terms go: a language with a stemmer, else None (`any`)
    unhappy: bool
    keys: tuple[str, ...]  # distinct term keys, sorted
    forms: tuple[tuple[str, str], ...]  # (key, as written) per occurrence


def discover(
    answers: Iterable[Answer],
    themes: ThemeSet,
    *,
    min_count: int = MIN_COUNT,
    max_candidates: int = MAX_CANDIDATES,
    terms: int = TERMS,
    languages: Sequence[str] | None = None,
) -> Discovery:
    """Candidate themes for the commented answers no theme in `themes` mentions, largest first."""
    total, covered, docs, _ = _read(answers, themes, languages)
    idf = _idf(covered, docs)
    groups = _group(docs, idf, max(min_count, 1), terms)
    candidates = [_candidate(docs, members, idf, terms) for members in groups]
    candidates.sort(key=lambda c: (-c.count, c.keys))
    kept = _with_ids(candidates[:max_candidates], themes)
    return Discovery(kept, total, len(covered) + len(docs), len(covered), sum(map(len, groups)))


def candidate_for(
    term: str, answers: Iterable[Answer], themes: ThemeSet, *, terms: int = TERMS, languages: Sequence[str] | None = None
) -> Candidate | None:
    """The candidate theme around one term (a stem or as written): the uncovered comments that have it.

    For a rising complaint: its term first, then the words its comments share most. None: no uncovered
    comment has the term (a theme covers it already, or nobody wrote it)."""
    _, covered, docs, tried = _read(answers, themes, languages)
    wanted = {" ".join(strip_accents(token) for token in tokenize(term))}  # a stem, as given
    wanted |= {" ".join(StemCache(code).stems(term)) for code in tried if code in LANGUAGES}  # written: stemmed each way
    members = [i for i, doc in enumerate(docs) if wanted.intersection(doc.keys)]
    if not members:
        return None
    key = min(wanted.intersection(k for i in members for k in docs[i].keys))
    found = _candidate(docs, members, _idf(covered, docs), terms, first=key)
    return _with_ids([found], themes)[0]


def _read(answers: Iterable[Answer], themes: ThemeSet, languages: Sequence[str] | None) -> tuple[int, list[_Doc], list[_Doc], list[str]]:
    """(answers, covered comments, uncovered comments, languages tried): tagged as the worker tags, and again for terms."""
    answers = list(answers)
    seen = sorted({a.language for a in answers if a.language in LANGUAGES})
    candidates = [*themes.languages, *seen, *DEFAULT_LANGUAGES] if languages is None else list(languages)
    worker = ThemeMatcher(themes) if len(themes) else None  # exactly what the worker would say is covered
    wide = ThemeMatcher(themes, candidates)  # more languages tried: the stems and stop words of the rest
    covered: list[_Doc] = []
    docs: list[_Doc] = []
    for answer in answers:
        if not answer.comment or not answer.comment.strip():
            continue
        doc = _doc(answer, wide)
        (covered if worker is not None and worker.match(answer.comment, answer.language) else docs).append(doc)
    return len(answers), covered, docs, list(wide.languages)


@cache
def _stop_words(language: str | None) -> frozenset[str]:
    return frozenset(stopwordsiso.stopwords(language)) if language and stopwordsiso.has_lang(language) else frozenset()


def _doc(answer: Answer, matcher: ThemeMatcher) -> _Doc:
    tagging = matcher.tag(answer.comment, answer.language)
    forms = term_forms(answer.comment or "", tagging)
    language = tagging.language if tagging.language in LANGUAGES else None
    return _Doc(answer.comment or "", language, answer.unhappy, tuple(sorted({k for k, _ in forms})), forms)


def term_forms(comment: str, tagging: Tagging) -> tuple[tuple[str, str], ...]:
    """A comment's terms, each as (key, as written) per occurrence: its stems and its two-stem phrases (two
    consecutive tokens, key "stem stem"), without stop words, numbers or one-letter tokens. A capital that only
    starts a sentence is not kept in the written form ("Zipper broke." gives "zipper"). What `themes suggest` groups
    by and rising complaints count (themes/emerging.py)."""
    stop = tagging.stop or _stop_words(tagging.language)
    stems = tagging.stems
    starts = _sentence_starts(comment, len(tagging.words))
    words = tuple(w.lower() if i in starts and w.istitle() else w for i, w in enumerate(tagging.words))
    keep = [len(f := fold(w)) > 1 and not f.isdigit() and f not in stop and w.lower() not in stop for w in words]
    forms: list[tuple[str, str]] = []
    for i, (word, stem) in enumerate(zip(words, stems, strict=True)):
        if keep[i]:
            forms.append((stem, word))
            if i + 1 < len(words) and keep[i + 1]:
                forms.append((f"{stem} {stems[i + 1]}", f"{word} {words[i + 1]}"))
    return tuple(forms)


def _sentence_starts(text: str, words: int) -> set[int]:
    """The indexes of the tokens (of the first `words`) that start a sentence: the first, and any after `.`, `!` or `?`."""
    starts, end = set(), 0
    text = normalize(text)
    for number, match in enumerate(WORD.finditer(text)):
        if number >= words:
            break
        if number == 0 or text[end : match.start()].strip()[-1:] in (".", "!", "?"):
            starts.add(number)
        end = match.end()
    return starts


def _idf(covered: list[_Doc], docs: list[_Doc]) -> dict[str, float]:
    """log(1 + commented answers / those with the term), for the terms of the uncovered comments."""
    everywhere = Counter(key for doc in [*covered, *docs] for key in doc.keys)
    total = len(covered) + len(docs)
    return {key: math.log(1 + total / everywhere[key]) for doc in docs for key in doc.keys}


def _group(docs: list[_Doc], idf: dict[str, float], min_count: int, terms: int) -> list[list[int]]:
    """Groups of comment indexes (see the module docstring), each in index order."""
    postings: dict[str, list[int]] = {}
    for i, doc in enumerate(docs):
        for key in doc.keys:
            postings.setdefault(key, []).append(i)
    shared = {key: ids for key, ids in postings.items() if len(ids) >= 2}  # a term of one comment groups nothing
    keys = [tuple(key for key in doc.keys if key in shared) for doc in docs]
    ranked = sorted((k for k, ids in shared.items() if len(ids) >= min_count), key=lambda k: (-len(shared[k]) * idf[k], k))
    groups: list[list[int]] = []
    claimed: set[int] = set()
    for key in ranked:
        ids = shared[key]
        if 2 * sum(i in claimed for i in ids) <= len(ids) and _companion(key, ids, keys, shared):
            groups.append(ids)
            claimed.update(ids)
    for _ in range(ROUNDS):
        new = _round(groups, keys, idf, min_count, terms)
        settled = _moved(groups, new) * 100 <= len(docs)  # under 1 % of the comments moved: the last ones see-saw
        groups = new
        if settled:
            break
    return groups


def _round(groups: list[list[int]], keys: list[tuple[str, ...]], idf: dict[str, float], min_count: int, terms: int) -> list[list[int]]:
    """One round: top terms, each comment to its best group, small groups dropped, overlapping ones merged."""
    counts = [Counter(key for i in members for key in keys[i]) for members in groups]
    weighted = [{key: n * idf[key] for key, n in tally.items()} for tally in counts]  # ÷ size: the c-TF-IDF weight
    tops = [_top(tally, w, terms, 2) for tally, w in zip(counts, weighted, strict=True)]
    member_sets = [set(members) for members in groups]
    by_top: dict[str, list[int]] = {}
    for number, top in enumerate(tops):
        for key in top:
            by_top.setdefault(key, []).append(number)
    joined: list[list[int]] = [[] for _ in groups]
    for i, own in enumerate(keys):
        alone, best, score = sum([idf[key] for key in own]), -1, 0.0
        for number in sorted({n for key in own for n in by_top.get(key, ())}):
            out = i in member_sets[number]  # scored without itself: a comment does not pull its group its way
            if len(groups[number]) > out:
                total = (sum([weighted[number].get(key, 0.0) for key in own]) - (alone if out else 0.0)) / (len(groups[number]) - out)
                if total > score:
                    best, score = number, total
        if best >= 0:
            joined[best].append(i)
    merged: list[tuple[list[int], set[str]]] = []
    for members, top in zip(joined, tops, strict=True):
        if len(members) < min_count:
            continue
        into = next((m for m in merged if len(m[1].intersection(top)) >= 2), None)
        if into is None:
            merged.append((members, set(top)))
        else:
            into[0].extend(members)
            into[0].sort()
            into[1].update(top)
    return [members for members, _ in merged]


def _moved(old: list[list[int]], new: list[list[int]]) -> int:
    """How many comments are not with the same others (a group is named by its first member)."""
    before = {i: members[0] for members in old for i in members}
    after = {i: members[0] for members in new for i in members}
    return sum(before.get(i) != after.get(i) for i in before.keys() | after.keys())


def _companion(key: str, ids: list[int], keys: list[tuple[str, ...]], shared: dict[str, list[int]]) -> bool:
    """Whether another term is in a fifth of `key`'s comments, and `key` in half of that term's: a complaint's words go
    together; a word any kind of comment may use goes with none in particular."""
    words = set(key.split(" "))
    together = Counter(other for i in ids for other in keys[i] if words.isdisjoint(other.split(" ")))
    return any(5 * n >= len(ids) and 2 * n >= len(shared[other]) for other, n in together.items())


def _top(counts: Counter[str], weights: dict[str, float], terms: int, at_least: int, first: str | None = None) -> list[str]:
    """The best terms by weight (then comments, then text); a phrase only where neither word is a term already."""
    top = [first] if first is not None else []
    for key in sorted(counts, key=lambda k: (-weights[k], -counts[k], k)):
        if len(top) >= terms:
            break
        if counts[key] < at_least or key in top:
            continue
        words = key.split(" ")
        if len(words) > 1 and any(word in top for word in words):
            continue
        top = [t for t in top if key not in t.split(" ") or t == first]  # a word replaces a phrase it is in
        top.append(key)
    return top


def _candidate(docs: list[_Doc], members: list[int], idf: dict[str, float], terms: int, first: str | None = None) -> Candidate:
    group = [docs[i] for i in members]
    counts = Counter(key for doc in group for key in doc.keys)
    weights = {key: n / len(group) * idf[key] for key, n in counts.items()}
    keys = _top(counts, weights, terms, min(2, len(group)), first)
    forms: dict[tuple[str, str], Counter[str]] = {}  # (key, language or ANY) → forms as written
    for doc in group:
        for key, form in doc.forms:
            forms.setdefault((key, doc.language or ANY), Counter())[form] += 1
    per_language: dict[str, list[str]] = {}
    written: dict[str, Counter[str]] = {}
    for key in keys:
        seen = sorted(code for k, code in forms if k == key)
        for code in [code for code in seen if code != ANY] or [ANY]:  # `any` only where no language is known
            per_language.setdefault(code, []).append(_most(forms[key, code]))
        written[key] = sum((forms[key, code] for code in seen), Counter())
    size = Counter(doc.language or ANY for doc in group)
    order = sorted(per_language, key=lambda code: (code == ANY, -size[code], code))
    typical = sorted(group, key=lambda d: (-len(set(keys).intersection(d.keys)), len(d.text), d.text))
    examples = tuple(dict.fromkeys(" ".join(doc.text.split()) for doc in typical))[:EXAMPLES]
    top_terms = tuple((_most(written[key]), counts[key]) for key in keys)
    label = ", ".join(term for term, _ in top_terms[:2]) or "New theme"
    return Candidate(
        id="",
        label=label[:1].upper() + label[1:],
        terms={code: per_language[code] for code in order},
        count=len(group),
        unhappy=sum(doc.unhappy for doc in group),
        top_terms=top_terms,
        examples=examples,
        keys=tuple(keys),
    )


def _most(counts: Counter[str]) -> str:
    """The most frequent form; a tie: the first in alphabetical order."""
    return min(counts, key=lambda form: (-counts[form], form))


def _with_ids(candidates: list[Candidate], themes: ThemeSet) -> list[Candidate]:
    """Each with a unique theme id: the slug of its top term, `-2`, `-3`... where taken (by a theme too)."""
    taken = set(themes.ids)
    named = []
    for number, candidate in enumerate(candidates, 1):
        base = candidate.top_terms[0][0] if candidate.top_terms else ""
        slug = re.sub(r"[^a-z0-9]+", "-", strip_accents(fold(base))).strip("-")[:56].strip("-") or f"candidate-{number}"
        unique, n = slug, 1
        while unique in taken:
            n += 1
            unique = f"{slug}-{n}"
        taken.add(unique)
        named.append(replace(candidate, id=unique))
    return named


def _clean(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """Customer text safe on one YAML comment line: every break or control character a space, whitespace collapsed, cut."""
    text = " ".join("".join(char if char.isprintable() else " " for char in text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def to_yaml(candidates: Sequence[Candidate]) -> str:
    """A `themes:` document to paste into a rules file, each theme under comments saying what it is based on."""
    lines = ["# Suggested themes: check the terms, rename ids and labels, add a parent where one fits."]
    if not candidates:
        return "\n".join([*lines, "# (no candidates: too few comments share their words)", "themes: []", ""])
    lines.append("themes:")
    for candidate in candidates:
        top = ", ".join(f"{_clean(term, 40)} {count}" for term, count in candidate.top_terms)
        lines.append(f"  # {candidate.count} comments ({candidate.unhappy} unhappy); top terms: {top}")
        lines += [f'  # e.g. "{_clean(example)}"' for example in candidate.examples]
        entry = yaml.safe_dump([candidate.as_theme()], sort_keys=False, allow_unicode=True, default_flow_style=None, width=10_000)
        lines += [f"  {line}" for line in entry.splitlines()]
    return "\n".join(lines) + "\n"
