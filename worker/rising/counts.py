"""The term counts of rising complaints, exact across crashes and replicas: the metric partials' pattern.

Each worker counts the input partitions it owns into one `TermWindow` per (partition, window): how many unhappy
answers' comments have each term (a comment counts once per term), stamped with the input offset it includes up
to. While a window may still be judged (it has not ended), it also keeps each term's written forms and the latest
SAMPLES unhappy comments, from which a message's examples and candidate theme are taken. At every checkpoint,
before input offsets are committed, the changed windows are published to the state topic, so it is never behind
the committed offsets:

- `kill -9` and restart, or a rebalance: the partition's new owner restores its windows (`TermState.restore`) and
  skips every replayed answer below a window's stamp. None is counted twice or missed.
- Several replicas: every worker reads the whole state topic (TermState), so it knows the latest window of every
  partition; a window's count is the sum of those latest partials (replace, never add).

**History.** Each partition also records when its history starts (`first`: the start of the window of the
oldest answer it counted, per window size). Nothing is judged before the earliest of them is a whole baseline
back. Windows older than the baseline and one window more are dropped; `first` is then raised to that horizon
(the counts before it are gone), so a longer baseline after a reload waits for its history too.

**Bounded.** A window keeps at most MAX_TERMS terms. Past that it is pruned the Misra–Gries way: the
(KEPT + 1)-th largest count c is subtracted from every count, the terms left at zero or below are dropped, and c
is added to the window's `floor`. So a term's true count lies between its kept count and kept + floor (floor
is 0 until a window of a partition sees more than MAX_TERMS distinct terms, ~1,500 unhappy comments), and the
floor is at most (the window's term occurrences) ÷ (KEPT + 1). Judging takes the latest window's kept counts (a
lower bound) against the baseline's kept counts plus floors (an upper bound): the bound can hide a rare term in a
very large feed, never raise a false one. The pruning depends only on the counts and the answers in offset
order, so a restore and a replay prune exactly as the first run did.

The records this module owns in the state topic (JSON; None is a tombstone):
    terms|<input topic>|<partition>|<size s>|<start s>   {"stamp", "counts", "floor"[, "forms", "samples"]}
    terms-seen|<input topic>|<partition>|<size s>         {"first"}
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..stream import StateView

KEPT = 1000  # terms a window keeps after a prune
MAX_TERMS = 2 * KEPT  # a window holding more is pruned to KEPT
MAX_FORMS = 4  # written forms kept per term (the least frequent goes)
SAMPLES = 30  # the latest unhappy comments kept per partition and window that may still be judged
SAMPLE_CHARS = 400  # each cut to this

Sample = tuple[str, str | None]  # (comment, language)


@dataclass(slots=True)
class TermWindow:
    """One partition's counts for one window."""

    counts: dict[str, int] = field(default_factory=dict)  # term key → unhappy comments with it (kept: a lower bound)
    floor: int = 0  # subtracted by prunes: the true count is at most counts + floor
    forms: dict[str, dict[str, int]] = field(default_factory=dict)  # term key → written form → comments (while judgeable)
    samples: list[Sample] = field(default_factory=list)  # the latest unhappy comments (while judgeable)
    stamp: int = 0  # input offsets below this are counted
    dirty: bool = False

    def add(self, terms: Mapping[str, str], comment: str, language: str | None, live: bool) -> None:
        """One unhappy comment's terms (key → written form). `live`: the window may still be judged."""
        counts = self.counts
        for key in terms:
            counts[key] = counts.get(key, 0) + 1
        if live:
            forms = self.forms
            for key, written in terms.items():
                seen = forms.get(key)
                if seen is None:
                    forms[key] = {written: 1}
                    continue
                seen[written] = seen.get(written, 0) + 1
                if len(seen) > MAX_FORMS:  # the least frequent goes (a tie: the last in alphabetical order)
                    del seen[max(seen, key=lambda form: (-seen[form], form))]
            self.samples.append((comment[:SAMPLE_CHARS], language))
            if len(self.samples) > SAMPLES:
                del self.samples[0]
        if len(counts) > MAX_TERMS:
            self._prune()
        self.dirty = True

    def _prune(self) -> None:
        cut = heapq.nlargest(KEPT + 1, self.counts.values())[-1]
        self.counts = {key: n - cut for key, n in self.counts.items() if n > cut}
        self.forms = {key: forms for key, forms in self.forms.items() if key in self.counts}
        self.floor += cut

    def settle(self) -> None:
        """The window ended: its forms and samples are no longer needed (only counts make a baseline)."""
        if self.forms or self.samples:
            self.forms, self.samples = {}, []
            self.dirty = True

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"stamp": self.stamp, "counts": self.counts, "floor": self.floor}
        if self.forms or self.samples:
            value |= {"forms": self.forms, "samples": self.samples}
        return value

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TermWindow:
        samples = [(str(comment), language) for comment, language in value.get("samples", ())]
        forms = {key: dict(seen) for key, seen in value.get("forms", {}).items()}
        return cls(dict(value["counts"]), int(value.get("floor", 0)), forms, samples, int(value["stamp"]))


class PartitionTerms:
    """The windows of one input partition owned by this worker, for one window size."""

    def __init__(self, topic: str, partition: int, size: int, windows: dict[int, TermWindow], first: int | None) -> None:
        self.topic = topic
        self.partition = partition
        self.size = size
        self.windows = windows  # window start → its counts
        self.first = first  # the start of the window of the oldest answer counted (None: nothing yet)
        self._first_published = first

    def add(self, terms: Mapping[str, str], comment: str, language: str | None, ts: int, offset: int, now: int, baseline: int) -> None:
        """Count one unhappy comment's terms into the window of `ts` (a replay below the window's stamp: not again)."""
        start = ts - ts % self.size
        if self.first is None or start < self.first:
            self.first = start  # history: also an answer too old to be kept says it is there
        if not terms or start < self._horizon(now, baseline):
            return  # older than any baseline: never judged against
        window = self.windows.get(start)
        if window is None:
            window = self.windows[start] = TermWindow()
        elif offset < window.stamp:
            return  # a replay: the window as published counts it already
        window.add(terms, comment, language, live=start + self.size > now)

    def changes(self, next_offset: int, now: int, baseline: int) -> list[tuple[bytes, bytes | None]]:
        """Records for the state topic: changed windows (stamped), tombstones for dropped ones, the history's start."""
        records: list[tuple[bytes, bytes | None]] = []
        horizon = self._horizon(now, baseline)
        for start, window in list(self.windows.items()):
            if start < horizon:
                del self.windows[start]
                records.append((self._key(start), None))
                continue
            if start + self.size <= now:
                window.settle()
            if window.dirty:
                window.stamp, window.dirty = max(window.stamp, next_offset), False
                records.append((self._key(start), json.dumps(window.to_json(), separators=(",", ":")).encode()))
        if self.first is not None and self.first < horizon:
            self.first = horizon  # the counts before it are gone: history starts there now
        if self.first != self._first_published and self.first is not None:
            self._first_published = self.first
            records.append((f"terms-seen|{self.topic}|{self.partition}|{self.size}".encode(), json.dumps({"first": self.first}).encode()))
        return records

    def _horizon(self, now: int, baseline: int) -> int:
        """Windows starting before this are dropped: older than the baseline, with one window of slack for clocks."""
        return now - now % self.size - baseline - self.size

    def _key(self, start: int) -> bytes:
        return f"terms|{self.topic}|{self.partition}|{self.size}|{start}".encode()


@dataclass
class Totals:
    """A window's counts summed over every partition's latest partial."""

    counts: dict[str, int] = field(default_factory=dict)
    floor: int = 0
    forms: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)


class TermState:
    """The term records of the state topic: every partition's latest windows and history start, as every replica
    reads them; and, for the partitions this worker owns, its own counting (`count`, `checkpoint`)."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.topic = view.input_topic
        self.windows: dict[tuple[int, int], dict[int, TermWindow]] = {}  # (size, start) → partition → its latest
        self.first: dict[int, dict[int, int]] = {}  # size → partition → history start
        self.changed: set[tuple[int, int]] = set()  # (size, start) read since the judge last looked
        self.owned: dict[int, PartitionTerms] = {}  # partition → what this worker counts (for one size)
        view.register("terms", self._window)
        view.register("terms-seen", self._seen)

    # -- counting the owned partitions (the loop) ------------------------------------------------

    def count(
        self,
        partition: int,
        terms: Mapping[str, str],
        comment: str,
        language: str | None,
        ts: int,
        offset: int,
        now: int,
        size: int,
        baseline: int,
    ) -> None:
        counting = self.owned.get(partition)
        if counting is None or counting.size != size:  # just assigned, or the window size changed (a reload)
            counting = self.owned[partition] = self.restore(partition, size)
        counting.add(terms, comment, language, ts, offset, now, baseline)

    def restore(self, partition: int, size: int) -> PartitionTerms:
        """Copies of one partition's latest windows of `size`, for its new owner (after a sync of the view)."""
        windows = {
            start: TermWindow.from_json(partials[partition].to_json())
            for (s, start), partials in self.windows.items()
            if s == size and partition in partials
        }
        return PartitionTerms(self.topic, partition, size, windows, self.first.get(size, {}).get(partition))

    def assigned(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.owned.pop(partition, None)  # restored from the records at its first answer: memory may hold unpublished counts

    def revoked(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            self.owned.pop(partition, None)

    def checkpoint(self, next_offsets: Mapping[int, int], now: int, baseline: int, only: set[int] | None = None) -> None:
        for partition, counting in self.owned.items():
            if only is None or partition in only:
                self.view.publish(counting.changes(next_offsets.get(partition, 0), now, baseline))

    # -- what every replica reads -----------------------------------------------------------------

    def history(self, size: int) -> int | None:
        """Where the history of every partition put together starts (None: nothing counted yet)."""
        starts = self.first.get(size)
        return min(starts.values()) if starts else None

    def totals(self, size: int, start: int, details: bool = False) -> Totals:
        """The window's counts over every partition (`details`: with forms and samples, partitions in order)."""
        total = Totals()
        partials = self.windows.get((size, start), {})
        for window in (partials[partition] for partition in sorted(partials)):
            counts = total.counts
            for key, n in window.counts.items():
                counts[key] = counts.get(key, 0) + n
            total.floor += window.floor
            if details:
                for key, forms in window.forms.items():
                    merged = total.forms.setdefault(key, {})
                    for form, n in forms.items():
                        merged[form] = merged.get(form, 0) + n
                total.samples += window.samples
        return total

    def _window(self, rest: str, value: bytes | None) -> None:
        partition, size, start = (int(part) for part in rest.split("|"))
        partials = self.windows.setdefault((size, start), {})
        if value is None:
            partials.pop(partition, None)
            if not partials:
                del self.windows[size, start]
        else:
            partials[partition] = TermWindow.from_json(json.loads(value))
        self.changed.add((size, start))

    def _seen(self, rest: str, value: bytes | None) -> None:
        partition, size = (int(part) for part in rest.split("|"))
        if value is None:
            self.first.get(size, {}).pop(partition, None)
        else:
            self.first.setdefault(size, {})[partition] = int(json.loads(value)["first"])
