"""A suggested root cause for a new task, learned from the causes people chose for resolved ones.

Multinomial naive Bayes over the stems of a comment (stop words left out; `Tagging.keywords`), with
Laplace smoothing. The themes the comment mentions may be features too (`CauseCounts.theme`: `#shipping-delay`,
which no token can be): they carry what a comment in one language teaches to comments in another
("te laat", "hilines" and "late" are one theme), and are never shown as terms. The model *is* its counts: per root cause, how many resolved tasks chose it and how
often each stem occurred in their comments. Counts only add up, so they can be kept anywhere (a state
topic record per partition, per replica, per day) and summed: every replica that sums the same records
gets the same counts, whatever their order, and so the same suggestion, to the last bit (the arithmetic
runs in one fixed order: causes sorted, the comment's stems as they come). Nothing is kept per task,
so the model outlives the retention of old tasks.

    score(c) = log(tasks[c] / N) + Σ_w log((n[w][c] + 1) / (T[c] + V))      w: the comment's stems the model has seen

N: resolved tasks; n[w][c]: occurrences of stem w for cause c; T[c]: all stem occurrences for c; V:
distinct stems. The suggestion is the best score (a tie: the cause first in alphabetical order), its
confidence the softmax of the scores (0–1), its terms the words that pulled most towards it: the largest
log P(w | c) − log P(w | any other cause), at most three, positive only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Resolved tasks before the first suggestion (the issue's default; `min_examples` is configurable).
DEFAULT_MIN_EXAMPLES = 20

#: Words shown with a suggestion.
TERMS = 3

#: Marks a feature that is a theme, not a stem (a token is word characters only, so none starts with it).
THEME_MARK = "#"


@dataclass(frozen=True)
class Suggestion:
    """The likeliest root cause, how sure (0–1), and the comment's words that weighed most for it."""

    root_cause: str
    confidence: float
    terms: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """`suggested_root_cause` of followup.opened."""
        return {"root_cause": self.root_cause, "confidence": self.confidence, "terms": list(self.terms)}


class CauseCounts:
    """Per root cause: resolved tasks, and stem occurrences in their comments. Additive; equal counts compare equal."""

    def __init__(self) -> None:
        self.tasks: dict[str, int] = {}  # cause → resolved tasks
        self.stems: dict[str, dict[str, int]] = {}  # stem → cause → occurrences
        self._totals: dict[str, int] = {}  # cause → all its stem occurrences (derived)

    @staticmethod
    def theme(theme_id: str) -> str:
        """A theme the comment mentions, as a feature: counted and weighed like a stem, never shown as a term."""
        return THEME_MARK + theme_id

    # -- counting -------------------------------------------------------------------------------

    def add(self, cause: str, stems: Iterable[str]) -> None:
        """One resolved task with root cause `cause` and a comment of these stems (`Tagging.keywords`)."""
        self._count(cause, list(stems), 1)

    def remove(self, cause: str, stems: Iterable[str], strict: bool = True) -> None:
        """Take back an `add` (a task reopened and resolved again with another cause); never below zero.

        `strict`: a task these counts never had is a ValueError (and changes nothing); otherwise each count
        goes down as far as zero (counts that `prune` dropped some of the task's stems from)."""
        stems = list(stems)
        tally = _tally(stems)
        if strict:
            if self.tasks.get(cause, 0) < 1 or any(self.stems.get(s, {}).get(cause, 0) < n for s, n in tally.items()):
                raise ValueError(f"these counts never had that task for {cause!r}")
            self._count(cause, stems, -1)
            return
        if self.tasks.get(cause, 0) > 0:
            self._bump(self.tasks, cause, -1)
        for stem, occurrences in tally.items():
            row = self.stems.get(stem)
            if row is None:
                continue
            taken = min(occurrences, row.get(cause, 0))
            self._bump(row, cause, -taken)
            self._bump(self._totals, cause, -taken)
            if not row:
                del self.stems[stem]

    def prune(self, keep: int) -> int:
        """Keep the `keep` commonest stems (all causes together; a tie keeps the first in alphabetical order) and
        forget the rest, so a record of these counts stays bounded. Deterministic. Returns how many went."""
        if len(self.stems) <= keep:
            return 0
        ranked = sorted(self.stems, key=lambda stem: (-sum(self.stems[stem].values()), stem))
        for stem in ranked[keep:]:
            for cause, occurrences in self.stems.pop(stem).items():
                self._bump(self._totals, cause, -occurrences)
        return len(ranked) - keep

    def _count(self, cause: str, stems: list[str], times: int) -> None:
        self._bump(self.tasks, cause, times)
        for stem, occurrences in _tally(stems).items():
            row = self.stems.setdefault(stem, {})
            self._bump(row, cause, occurrences * times)
            self._bump(self._totals, cause, occurrences * times)
            if not row:
                del self.stems[stem]

    @staticmethod
    def _bump(table: dict[str, int], key: str, by: int) -> None:
        value = table.get(key, 0) + by
        if value:
            table[key] = value
        else:
            table.pop(key, None)

    def merge(self, other: CauseCounts) -> None:
        """Add every count of `other` to these (in place)."""
        for cause, tasks in other.tasks.items():
            self._bump(self.tasks, cause, tasks)
        for stem, row in other.stems.items():
            mine = self.stems.setdefault(stem, {})
            for cause, occurrences in row.items():
                self._bump(mine, cause, occurrences)
                self._bump(self._totals, cause, occurrences)

    def __add__(self, other: CauseCounts) -> CauseCounts:
        total = CauseCounts()
        total.merge(self)
        total.merge(other)
        return total

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CauseCounts) and self.tasks == other.tasks and self.stems == other.stems

    def __repr__(self) -> str:
        return f"CauseCounts(tasks={self.tasks!r}, stems={len(self.stems)})"

    @property
    def resolved(self) -> int:
        """Resolved tasks counted."""
        return sum(self.tasks.values())

    # -- the state topic's form -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, keys sorted: the same counts always give the same bytes."""
        return {
            "tasks": dict(sorted(self.tasks.items())),
            "stems": {stem: dict(sorted(row.items())) for stem, row in sorted(self.stems.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CauseCounts:
        """The inverse of `to_dict`; ValueError on anything else (a record from a bad producer)."""
        counts = cls()
        tasks, stems = data.get("tasks", {}), data.get("stems", {})
        if not isinstance(tasks, Mapping) or not isinstance(stems, Mapping):
            raise ValueError("cause counts: `tasks` and `stems` must be mappings")
        for cause, number in tasks.items():
            counts._bump(counts.tasks, _key(cause), _count_of(number))
        for stem, row in stems.items():
            if not isinstance(row, Mapping):
                raise ValueError(f"cause counts: stem {stem!r} must map causes to counts")
            mine = counts.stems.setdefault(_key(stem), {})
            for cause, number in row.items():
                cause, number = _key(cause), _count_of(number)
                counts._bump(mine, cause, number)
                counts._bump(counts._totals, cause, number)
            if not mine:
                del counts.stems[stem]
        return counts

    # -- the suggestion -------------------------------------------------------------------------

    def suggest(
        self, stems: Sequence[str], words: Sequence[str] | None = None, min_examples: int = DEFAULT_MIN_EXAMPLES
    ) -> Suggestion | None:
        """The likeliest root cause of a comment of these stems, or None before `min_examples` resolved tasks.

        `words`: the comment's words in the same order (`Tagging.keyword_words`), shown as its terms;
        without them, the stems. A comment of no known stem gets the commonest cause, with no terms."""
        resolved = self.resolved
        if resolved < max(min_examples, 1):
            return None
        causes = sorted(self.tasks)
        known = [stem for stem in stems if stem in self.stems]
        scores = {cause: self._score(cause, known, resolved) for cause in causes}
        best = min(causes, key=lambda cause: (-scores[cause], cause))
        top = scores[best]
        confidence = 1.0 / sum(math.exp(scores[cause] - top) for cause in causes)
        return Suggestion(best, round(confidence, 3), self._terms(best, stems, words))

    def _score(self, cause: str, known: list[str], resolved: int) -> float:
        score = math.log(self.tasks[cause] / resolved)
        if not known:  # (and perhaps no stem at all yet: no vocabulary to divide by)
            return score
        score -= len(known) * math.log(self._totals.get(cause, 0) + len(self.stems))
        for stem in known:
            score += math.log(self.stems[stem].get(cause, 0) + 1)
        return score

    def _terms(self, cause: str, stems: Sequence[str], words: Sequence[str] | None) -> tuple[str, ...]:
        """The stems (shown as their words) for which P(stem | cause) most exceeds P(stem | the other causes)."""
        vocabulary = len(self.stems)
        total = self._totals.get(cause, 0)
        others = sum(self._totals.values()) - total
        weights: dict[str, float] = {}
        shown: dict[str, str] = {}
        for at, stem in enumerate(stems):
            row = self.stems.get(stem)
            if row is None or stem.startswith(THEME_MARK):
                continue
            shown.setdefault(stem, words[at] if words is not None else stem)
            mine = row.get(cause, 0)
            rest = sum(row.values()) - mine
            lift = math.log((mine + 1) / (total + vocabulary)) - math.log((rest + 1) / (others + vocabulary))
            weights[stem] = weights.get(stem, 0.0) + lift
        ranked = sorted((stem for stem, weight in weights.items() if weight > 0), key=lambda stem: (-weights[stem], stem))
        return tuple(shown[stem] for stem in ranked[:TERMS])


def _tally(stems: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for stem in stems:
        found[stem] = found.get(stem, 0) + 1
    return found


def _key(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"cause counts: {value!r} is not a cause or a stem")
    return value


def _count_of(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"cause counts: {value!r} is not a count")
    return value
