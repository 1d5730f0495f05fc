"""Rising complaints in the loop (issue 22): count the terms of unhappy comments, judge the current window, post
each rising term once.

**Counting** (`count`, on the hot path: only unhappy answers with a comment, and only with `emerging:` on). The
comment's terms (themes.term_forms: stems and two-stem phrases, no stop words), each once per comment, go into the
window of the answer's time, per input partition (rising/counts.py). `checkpoint` publishes them before offsets are
committed; `assigned`/`revoked` hand partitions over. Exact across kill -9 and replicas, like the metric partials.

**Judging** (`tick`, about once a second, on one replica: the owner of feedback partition crc32("emerging") mod
partitions). The window that contains *now* (windows are aligned to multiples of `window` since the epoch, UTC) is
judged against the `baseline` before it, summed over every partition's latest counts: a term rises as soon as its
count so far meets the rule (themes/emerging.py), an early warning. Past windows are never judged, so a replay or a
backfill of old answers (they count into their own old windows) raises nothing; and nothing is judged before the
history of every partition put together reaches a whole baseline back.

**Posting once.** Each (window, term) has a slot (delivery/slots.py: `emerging_slot`), posted through
`Outbox.post_once` like every message: its OWED record is in Kafka before the post, POSTED when Slack answers. A
restart, or another replica taking the judging over (both read the state topic first), finds the slot settled and
posts nothing; a slot left owed by a crash is looked for in the channel first, then posted. A silence matching
`rule=emerging` holds a rising term back for its window (in this process).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from kafka import KafkaConsumer, TopicPartition

from ..alerting import Alert, AlertRenderer, Silences
from ..delivery import Outbox, Place, emerging_slot
from ..events import EventData
from ..notation import format_duration
from ..rising import TermState, Totals
from ..rules import RuleSet
from ..stream import Stats
from ..themes import (
    DEFAULT_LANGUAGES,
    NO_THEMES,
    Answer,
    EmergingSpec,
    RisingTerm,
    Tagging,
    ThemeMatcher,
    candidate_for,
    covering,
    rising_terms,
    term_forms,
    to_yaml,
)

log = logging.getLogger("worker")

OWNER_KEY = b"emerging"  # the judge: the owner of feedback partition crc32(OWNER_KEY) mod partitions
HANDLED_KEPT = 1024  # slots this process posted, is posting or held back: never asked again (bounded)
AGAIN_S = 30.0  # an unchanged window is judged again this often (a post given up, a silence that ended)


@dataclass(frozen=True)
class Verdict:
    """The judge's latest look at the current window (logs and tests)."""

    start: int  # the window's start (unix s)
    counts: Mapping[str, int]  # its terms' counts so far, over every partition
    ready: bool  # a whole baseline of history: judged
    rising: tuple[str, ...]  # the rising terms' keys, most frequent first


class RisingComplaints:
    def __init__(
        self,
        state: TermState,
        outbox: Outbox,
        silences: Silences,
        rules: Callable[[], RuleSet],
        renderer: Callable[[], AlertRenderer],
        consumer: KafkaConsumer,
        input_topic: str,
        clock: Callable[[], datetime],
        stats: Stats | None = None,
    ) -> None:
        self.state = state
        self.stats = stats or Stats()  # rising_complaints: posted by this replica (/metrics)
        self.outbox = outbox
        self.silences = silences
        self.rules = rules  # the current rule set and renderer (a hot reload swaps them; `emerging:` may change or vanish)
        self.renderer = renderer
        self.consumer = consumer
        self.input_topic = input_topic
        self.clock = clock
        self._partitions = 0
        self._plain: ThemeMatcher | None = None  # for rules without themes (then the loop tags nothing)
        self._handled: dict[str, None] = {}
        self._judged: tuple[EmergingSpec, int] | None = None  # the spec and window last judged
        self._again = 0.0
        self._baseline: tuple[tuple[int, int, int], Totals] | None = None  # (size, start, baseline) → summed counts
        self.verdict: Verdict | None = None
        self._last: EmergingSpec | None = None  # the spec of the last checkpoint
        self.judging = False  # this replica is the judge (it owns the partition crc32(OWNER_KEY) mod partitions)

    # -- counting (the loop) ------------------------------------------------------------------------

    def count(self, partition: int, data: EventData, tagging: Tagging | None, ts: int, offset: int, now: int) -> None:
        """An unhappy answer with a comment (the caller checks both, and that `emerging:` is on)."""
        spec = self.rules().emerging
        if spec is None:
            return
        comment, language = data["comment"], data.get("language")
        if tagging is None:
            tagging = self._matcher().tag(comment, language)
        terms = tagging.terms
        if terms is None:  # once per tagging: a short comment seen before shares its tagging, and so these
            terms = {}
            for key, written in term_forms(comment, tagging):
                terms.setdefault(key, written)  # once per comment, as first written
            tagging.terms = terms
        size, baseline = int(spec.window.total_seconds()), int(spec.baseline.total_seconds())
        self.state.count(partition, terms, comment, language, ts, offset, now, size, baseline)

    def checkpoint(self, next_offsets: dict[int, int], now: int, only: list[TopicPartition] | None) -> None:
        """Before the producer is flushed and offsets committed: publish the changed counts (stamped)."""
        spec = self.rules().emerging or self._last  # turned off by a reload: what was counted is published all the same
        if spec is None:
            return
        self._last = spec
        baseline = int(spec.baseline.total_seconds())
        numbers = None if only is None else {tp.partition for tp in only if tp.topic == self.input_topic}
        self.state.checkpoint(next_offsets, now, baseline, numbers)

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        """After the view's sync: the partitions' counts are restored from the state topic at their first answer."""
        self.state.assigned(tp.partition for tp in partitions if tp.topic == self.input_topic)
        self._partitions = 0

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        self.state.revoked(tp.partition for tp in partitions if tp.topic == self.input_topic)
        self._partitions = 0

    def _matcher(self) -> ThemeMatcher:
        matcher = self.rules().matcher
        if matcher is None:
            if self._plain is None:
                self._plain = ThemeMatcher(NO_THEMES, DEFAULT_LANGUAGES)  # as themes suggest tries them
            matcher = self._plain
        return matcher

    # -- judging the current window (one replica) ------------------------------------------------------

    def tick(self, now: int, owned: set[int]) -> None:
        spec = self.rules().emerging
        changed, self.state.changed = self.state.changed, set()
        if spec is None or not self._judge(owned):
            self._baseline = None  # not judging: the changes go unwatched
            return
        size, baseline = int(spec.window.total_seconds()), int(spec.baseline.total_seconds())
        start = now - now % size
        moved = any(s == size and start - baseline <= w <= start for s, w in changed)  # the window or its baseline
        if self._judged == (spec, start) and not moved and time.monotonic() < self._again:
            return
        self._judged, self._again = (spec, start), time.monotonic() + AGAIN_S
        history = self.state.history(size)
        current = self.state.totals(size, start)
        ready = history is not None and history <= start - baseline  # a whole baseline of history
        found: list[RisingTerm] = []
        if ready and current.counts:
            usual = self._usual(size, start, baseline, changed)
            base = {key: usual.counts.get(key, 0) + usual.floor for key in current.counts}  # an upper bound (rising/counts.py)
            found = rising_terms(current.counts, base, {}, spec)
        self.verdict = Verdict(start, current.counts, ready, tuple(term.key for term in found))
        fresh = [term for term in found if emerging_slot(start, size, term.key).key not in self._handled]
        if fresh:
            details = self.state.totals(size, start, details=True)
            for term in fresh:
                forms = details.forms.get(term.key)
                self._post(spec, start, replace(term, written=_most(forms)) if forms else term, details)

    def _judge(self, owned: set[int]) -> bool:
        """Is this replica the judge?"""
        if not self._partitions:
            self._partitions = len(self.consumer.partitions_for_topic(self.input_topic) or ())
        judging = bool(self._partitions) and zlib.crc32(OWNER_KEY) % self._partitions in owned
        if judging != self.judging:
            self.judging = judging
            log.info("rising complaints: %s", "this replica judges the current window" if judging else "judged by another replica")
        return judging

    def _usual(self, size: int, start: int, baseline: int, changed: set[tuple[int, int]]) -> Totals:
        """The baseline windows' counts summed (kept until one of them changes, or the window moves on)."""
        key = (size, start, baseline)
        if self._baseline is None or self._baseline[0] != key or any(s == size and start - baseline <= w < start for s, w in changed):
            total = Totals()
            for window in range(start - baseline, start, size):
                part = self.state.totals(size, window)
                for term, n in part.counts.items():
                    total.counts[term] = total.counts.get(term, 0) + n
                total.floor += part.floor
            self._baseline = (key, total)
        return self._baseline[1]

    def _post(self, spec: EmergingSpec, start: int, term: RisingTerm, details: Totals) -> None:
        slot = emerging_slot(start, int(spec.window.total_seconds()), term.key)
        self._handle(slot.key)
        earlier = self.outbox.posts.get(slot)
        if earlier is not None and earlier.is_settled:
            return  # an earlier run, or the replica that judged before us
        what = f"rising complaint {term.written!r}"
        silence = self.silences.holding_metric("emerging", {}, self.clock())
        if silence is not None:
            log.info("%s silenced by %s: %s", what, silence.id, silence.reason)
            return
        self.stats.rising_complaints += 1
        log.warning(
            "rising complaint: %r in %d unhappy comments since %s (usually %.1f per %s)",
            term.written,
            term.count,
            datetime.fromtimestamp(start, UTC).isoformat(),
            term.usual,
            format_duration(spec.window),
        )
        self.outbox.post_once(what, [Place(slot)], spec.channel, lambda: self._render(spec, start, term, details))

    def _render(self, spec: EmergingSpec, start: int, term: RisingTerm, details: Totals) -> Alert:
        """The message: the covering themes, up to `examples` comments with the term, a candidate theme to paste."""
        rules = self.rules()
        matcher = self._matcher()
        with_term = sorted(
            {
                comment
                for comment, language in details.samples
                if term.key in {key for key, _ in term_forms(comment, matcher.tag(comment, language))}
            },
            key=lambda comment: (len(comment), comment),
        )
        answers = [Answer(comment, language, True) for comment, language in details.samples]
        candidate = candidate_for(term.key, answers, rules.themes)
        themes = rules.themes.labels(covering(rules.matcher, term, None))
        return self.renderer().render_emerging(spec, term, start, themes, with_term, to_yaml([candidate]) if candidate else None)

    def _handle(self, key: str) -> None:
        self._handled[key] = None
        if len(self._handled) > HANDLED_KEPT:
            del self._handled[next(iter(self._handled))]


def _most(forms: dict[str, int]) -> str:
    """The most frequent written form; a tie: the first in alphabetical order."""
    return min(forms, key=lambda form: (-forms[form], form))
