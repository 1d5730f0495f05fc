"""The suggested root cause of a new task, learned from the root causes people chose for resolved ones.

The model is themes/suggest.py's `CauseCounts` (multinomial naive Bayes over stems). It lives where
every replica reads it, the state topic, one record per root cause:

    cause|<input topic>|<root cause>   {"tasks": n, "stems": {stem: occurrences}, "last": [task id, action id]}

**What counts.** A task counts while it is resolved or closed: its root cause, and its comment's stems
(stop words left out) and themes (`Case.keywords`, from the Open action: the comment's tagging is the
loop's). A theme is a feature like a stem (`#shipping-delay`, never shown as a term): what "te laat" taught
then counts for "late", and the demo's comments, five languages with few words in common, are suggested
right far more often (tests/tasks/test_suggestion_accuracy.py). Reopened, it is taken back until it is resolved again (with the cause chosen then). A task
without a comment, or whose comment is only stop words, teaches nothing. Only the causes of the current
taxonomy are suggested, and only their tasks count towards `min_examples`. Counts are not per task, so
they outlive the tasks: a finished task expires after ALERT_RECORD_RETENTION, what it taught stays.

**Exactly once.** Only the keeper writes, as it applies an action that changed what a case counts as
(`learn`), and before it saves that case. An action delivered again finds its id in the case
(`Case.applied`) and is not applied again, so it counts once. A keeper that crashed after writing the
cause record and before the case applies the action again, and finds it named in the record's `last`,
so it does not count it twice (one producer, one partition: a case record that landed means the cause
record before it did, and a cause record that landed without its case is the last one written). One
action changes one cause's record at most (a reopen takes a task back, a resolve adds it).

**The same everywhere.** Every replica reads the records, sums the causes' counts in one order and so
holds the same model to the last bit (suggest.py); the keeper computes the suggestion when it applies
the Open, so followup.opened, the card and the dialog all carry that one, wherever the keeper runs.

**Bounded.** A record keeps its cause's 20,000 commonest stems (`CauseCounts.prune`) of at most 30
characters: under 1 MB, Kafka's default for one record, however long the worker runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from functools import cache

from ..stream import StateView
from ..themes import DEFAULT_MIN_EXAMPLES, NO_THEMES, CauseCounts, Tagging, ThemeMatcher
from .actions import MAX_KEYWORDS, MAX_STEM, MAX_WORD
from .case import Case
from .policy import TaskPolicy
from .records import SuggestedRootCause

log = logging.getLogger("worker")

#: Distinct stems a cause's record keeps (the commonest): ~15 bytes each in JSON, ~40 at most.
MAX_STEMS_PER_CAUSE = 20_000


@cache
def _plain() -> ThemeMatcher:
    """Tags the comments of answers when the rules define no themes: the event's language, else words casefolded."""
    return ThemeMatcher(NO_THEMES, languages=())


#: (task id, action id): the action that last changed a cause's record.
Last = tuple[str, str]


def comment_keywords(comment: str | None, language: str | None, tagging: Tagging | None) -> tuple[list[str], list[str]]:
    """A comment's stems without its stop words, and those words as written (casefolded): what an Open carries.

    `tagging`: the loop's (rules.RuleSet.tag). Without one (the rules define no themes) the comment is
    tokenised here: stemmed, without stop words, in the event's `language` when it names one with a
    stemmer; otherwise its words casefolded and without accents, stop words included (the model still
    learns from them; events with a `language`, or themes in the rules, give it cleaner words)."""
    if tagging is None:
        if not comment:
            return [], []
        tagging = _plain().tag(comment, language)
    pairs = [
        (stem, word)
        for stem, word in zip(tagging.keywords, tagging.keyword_words, strict=True)
        if 0 < len(stem) <= MAX_STEM and len(word) <= MAX_WORD  # what an Open takes (a longer token is no word)
    ][:MAX_KEYWORDS]
    return [stem for stem, _ in pairs], [word for _, word in pairs]


def features(stems: Iterable[str], themes: Iterable[str]) -> list[str]:
    """What the model weighs for a comment: its stems, then its themes (sorted) as features of their own."""
    return [*stems, *(CauseCounts.theme(theme) for theme in sorted(themes))]


def counted(case: Case | None) -> tuple[str, tuple[str, ...]] | None:
    """What a case teaches the model as it stands: (root cause, its comment's stems), or None."""
    if case is None or case.resolution is None or case.status not in ("resolved", "closed") or not case.keywords:
        return None
    return case.resolution.root_cause, tuple(case.keywords)


class CauseModel:
    """The counts of every root cause, as the state topic has them; the keeper's changes written there."""

    def __init__(self, view: StateView, policy: TaskPolicy, min_examples: int = DEFAULT_MIN_EXAMPLES) -> None:
        self.view = view
        self.taxonomy = frozenset(policy.root_causes)
        self.min_examples = min_examples
        self.slices: dict[str, CauseCounts] = {}  # root cause -> its counts (that cause only)
        self.last: dict[str, Last] = {}
        #: Causes this worker wrote since its last sync: their records coming back are echoes, older than memory.
        self.own: set[str] = set()
        self._model: CauseCounts | None = None  # the taxonomy's slices summed; None: to sum again
        view.register("cause", self._record, before_sync=self.own.clear)

    @property
    def counts(self) -> CauseCounts:
        """The model: the counts of the taxonomy's causes, summed in alphabetical order."""
        if self._model is None:
            model = CauseCounts()
            for cause in sorted(self.slices):
                if cause in self.taxonomy:
                    model.merge(self.slices[cause])
            self._model = model
        return self._model

    @property
    def ready(self) -> bool:
        """Enough tasks resolved (`min_examples`) for a suggestion."""
        return self.counts.resolved >= self.min_examples

    def suggest(self, stems: Sequence[str], words: Sequence[str], themes: Sequence[str] = ()) -> SuggestedRootCause | None:
        """The root cause resolved tasks point to for a comment of these stems and themes; None before `min_examples`.

        `words`: the stems' words as written (its terms are some of them)."""
        suggestion = self.counts.suggest(features(stems, themes), [*words, *("" for _ in themes)], self.min_examples)
        if suggestion is None:
            return None
        return SuggestedRootCause(root_cause=suggestion.root_cause, confidence=suggestion.confidence, terms=list(suggestion.terms))

    # -- written by the keeper -----------------------------------------------------------------------------

    def learn(self, before: Case | None, after: Case, action_id: str) -> None:
        """The keeper applied `action_id`, and `before` became `after`: count what that changed (before saving `after`)."""
        old, new = counted(before), counted(after)
        if old == new:
            return
        changes: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        if old is not None:
            changes.setdefault(old[0], []).append((old[1], -1))
        if new is not None:
            changes.setdefault(new[0], []).append((new[1], 1))
        mark = (after.task_id, action_id)
        for cause, steps in changes.items():
            if self.last.get(cause) == mark:
                log.info("root cause %s already counts action %s of task %s (applied before a restart)", cause, action_id, after.task_id)
                continue
            counts = self.slices.get(cause) or CauseCounts()
            for stems, sign in steps:
                if sign > 0:
                    counts.add(cause, stems)
                else:
                    counts.remove(cause, stems, strict=False)  # (a pruned stem is gone already)
            counts.prune(MAX_STEMS_PER_CAUSE)
            self.slices[cause], self.last[cause], self._model = counts, mark, None
            self.own.add(cause)
            self.view.publish([(self.view.key("cause", cause), _record_of(cause, counts, mark))])

    # -- read back from the state topic --------------------------------------------------------------------

    def _record(self, cause: str, value: bytes | None) -> None:
        if cause in self.own:
            return  # our own write coming back: memory is newer
        self._model = None
        if value is None:
            self.slices.pop(cause, None)
            self.last.pop(cause, None)
            return
        try:
            data = json.loads(value)
            counts = CauseCounts.from_dict({"tasks": {cause: data["tasks"]}, "stems": {s: {cause: n} for s, n in data["stems"].items()}})
            last = data.get("last")
            mark = (str(last[0]), str(last[1])) if isinstance(last, list) and len(last) == 2 else None
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("state topic: the counts of root cause %r are unreadable, left as they were: %s", cause, err)
            return
        self.slices[cause] = counts
        if mark is None:
            self.last.pop(cause, None)
        else:
            self.last[cause] = mark


def _record_of(cause: str, counts: CauseCounts, mark: Last) -> bytes:
    """A cause's record: the same counts always give the same bytes."""
    stems = {stem: row[cause] for stem, row in sorted(counts.stems.items()) if cause in row}
    return json.dumps({"tasks": counts.tasks.get(cause, 0), "stems": stems, "last": list(mark)}, ensure_ascii=False).encode()
