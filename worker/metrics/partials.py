"""Metric partials that stay exact across crashes and replicas.

Each worker counts the input partitions it owns into *partials*: one Tally per
(input partition, pane, dimension value), stamped with the input offset it includes up to.
At every checkpoint, before input offsets are committed, changed partials are published to
the worker state topic (STATE_TOPIC, see stream/state.py), so that topic is never behind the
committed offsets.

- Crash and restart (or a rebalance): the new owner restores the partition's partials from
  the state topic and skips, *for metrics only*, every replayed event below a pane's stamp.
  A pane published just before the crash already includes those events; one that was not
  published does not. No event is counted twice or lost, whatever moment the crash hits.
- Several replicas: every worker reads the whole state topic (MetricState over the
  StateView), so it knows the latest partial of every partition. A snapshot is the sum of the latest partials
  (replace, never add: re-reading a record is harmless).

The records this module owns in the state topic (the value is JSON; None is a tombstone):
    pane|<input topic>|<partition>|<step s>|<start s>|<dimension>   {"stamp", "tally"}
    position|<input topic>|<partition>                               {"next_offset", "at"}
    final|<input topic>|<snapshot key>                               {"at"}  (a final was emitted)
    rule|<input topic>|<rule id>|<dimension>                         {"firing", "slot"}  (the slot of its alert)
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Set
from dataclasses import dataclass
from typing import Any

from ..events import NO_THEME_IDS, UNHAPPY, VALID_SCORES, EventData, FeedbackEvent, data_getter, field_getter
from ..stream import StateView
from .tally import Tally
from .windows import MetricsConfig

#: Panes are kept this long after their last window closed, so emitters can still sum them for a final.
GRACE_S = 6 * 3600

PaneKey = tuple[int, int, str]  # (step, start, dimension) ; dimension "" is the overall figure


@dataclass(slots=True)
class Pane:
    tally: Tally
    stamp: int = 0  # input offsets below this are already counted
    dirty: bool = False


class PartitionMetrics:
    """The partials of one input partition owned by this worker.

    Two ways in: `add` counts a FeedbackEvent into its panes at once; `add_data`, the worker's
    hot path, only notes the event in a per-bucket count (a few dict operations) and adds the
    counts to the panes in `changes()` (the only reader of the panes). The sums are the same
    either way: counts add up, and the unhappy customers' latest values are a maximum. Events
    too late for every window, and replays below a restored pane's stamp, take `add`'s way.

    Comment themes: `add_data` reads the themes the rule set's tagging set (`data["themes"]`, absent
    when the rules define none) and keeps them in the same counts' keys, the set of the comment's
    themes (None without a comment): an answer without a comment costs one lookup more, and the
    per-theme counts are made at the checkpoint, once per distinct set."""

    def __init__(self, topic: str, partition: int, config: MetricsConfig, panes: dict[PaneKey, Pane] | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.panes: dict[PaneKey, Pane] = panes or {}
        self.lateness = int(config.lateness.total_seconds())
        self.steps = sorted(config.steps().items())  # [(step, largest size using it)]
        self.dimensions = [(path, field_getter(path)) for path in config.dimensions]
        self._data_dimensions = [(path, data_getter(path)) for path in config.dimensions]
        self.late = 0
        # Below this offset events were seen before the last checkpoint: their late counts are in the restored panes.
        self.resume_at = max((pane.stamp for pane in self.panes.values()), default=0)
        # Every pane boundary is a multiple of the grain, so a grain-long bucket lies in one pane of each step.
        self._grain = math.gcd(*(step for step, _ in self.steps))
        self._dimension_key = _dimension_key(config.dimensions)
        # Where: (bucket, open steps, dimension key); themes: the comment's (None: no comment). The counts of `add_data`
        # not yet in the panes:
        self._pending: dict[tuple[tuple[Any, ...], str, int, Set[str] | None], int] = {}  # (where, survey, score, themes) -> events
        # (where, customer, themes) -> latest
        self._pending_unhappy: dict[tuple[tuple[Any, ...], str, Set[str] | None], tuple[int, float | None]] = {}
        self._now = -1
        self._open: dict[int, tuple[int, ...]] = {}  # bucket -> the steps whose pane of it is open at `_now`

    def add(self, event: FeedbackEvent, ts: int, offset: int, now: int, themes: Set[str] = NO_THEME_IDS) -> bool:
        """Count one event into one pane per step and dimension. False if too late for every window.

        `themes`: those its comment mentions (RuleSet.tag); ignored without a comment."""
        values = [get(event) for _, get in self.dimensions]
        customer = event.customer
        mentions = themes if event.comment else None
        return self._add(event.survey, event.score, customer.id, customer.monthly_value, mentions, values, ts, offset, now)

    def add_data(self, data: EventData, ts: int, offset: int, now: int) -> bool:
        """`add` for EventData (events.event_data), the worker's hot path. False if too late for every window."""
        bucket = ts - ts % self._grain
        if now != self._now:
            self._now, self._open = now, {}
        steps = self._open.get(bucket)
        if steps is None:  # the same decision as `_add`'s, once per bucket and `now`
            steps = self._open[bucket] = tuple(step for step, size in self.steps if now <= bucket - bucket % step + size + self.lateness)
        themes = (data.get("themes") or NO_THEME_IDS) if data["comment"] else None
        if not steps or offset < self.resume_at:
            customer = data["customer"]
            values = [get(data) for _, get in self._data_dimensions]
            return self._add(data["survey"], data["score"], customer["id"], customer["monthly_value"], themes, values, ts, offset, now)
        survey, score = data["survey"], data["score"]
        where = (bucket, steps, self._dimension_key(data))
        key = (where, survey, score, themes)
        self._pending[key] = self._pending.get(key, 0) + 1
        if score in _UNHAPPY_SCORES[survey]:
            customer = data["customer"]
            who, value = (where, customer["id"], themes), customer["monthly_value"]
            seen = self._pending_unhappy.get(who)
            if seen is None or (ts, _num(value)) > (seen[0], _num(seen[1])):
                self._pending_unhappy[who] = (ts, value)
        return True

    def _add(
        self,
        survey: str,
        score: int,
        customer: str,
        value: float | None,
        themes: Set[str] | None,
        values: list[Any],
        ts: int,
        offset: int,
        now: int,
    ) -> bool:
        dims = [""] + [f"{path}={v}" for (path, _), v in zip(self.dimensions, values, strict=True) if v is not None]
        counted = False
        for step, size in self.steps:
            start = ts - ts % step
            if now > start + size + self.lateness:
                continue  # every window holding this pane has closed
            counted = True
            for dim in dims:
                pane = self._pane((step, start, dim))
                if offset >= pane.stamp:
                    pane.tally.add(survey, score, customer, ts, value, themes)
                    pane.dirty = True
        if not counted and offset >= self.resume_at:
            self.late += 1
            for step, _ in self.steps:  # visible in the windows open when it arrived
                for dim in dims:
                    pane = self._pane((step, now - now % step, dim))
                    if offset >= pane.stamp:
                        pane.tally.late += 1
                        pane.dirty = True
        return counted

    def _fold(self) -> None:
        """Add the pending counts of `add_data` to the panes: summed per `where` first, then merged into its panes."""
        sums: dict[tuple[Any, ...], Tally] = {}
        pending, self._pending = self._pending, {}
        for (where, survey, score, themes), n in pending.items():
            if (tally := sums.get(where)) is None:
                tally = sums[where] = Tally()
            tally.count(survey, score, n)
            if themes is not None:
                tally.commented(survey, score, n, themes)
        unhappy, self._pending_unhappy = self._pending_unhappy, {}
        for (where, customer, themes), (ts, value) in unhappy.items():
            tally = sums[where]  # its answer is in `pending` too
            tally.unhappy_answer(customer, ts, value)
            for theme in themes or ():
                tally.theme(theme).unhappy.add(customer)
        for where, tally in sums.items():
            for pane in self._panes_of(where):
                pane.tally.merge(tally)
                pane.dirty = True

    def _panes_of(self, where: tuple[Any, ...]) -> list[Pane]:
        bucket, steps, dimension_key = where
        values = dimension_key if len(self.dimensions) != 1 else (dimension_key,)
        dims = [""] + [
            v[0] if type(v) is tuple else f"{path}={v}" for (path, _), v in zip(self.dimensions, values, strict=True) if v is not None
        ]
        return [self._pane((step, bucket - bucket % step, dim)) for step in steps for dim in dims]

    def _pane(self, key: PaneKey) -> Pane:
        pane = self.panes.get(key)
        if pane is None:
            pane = self.panes[key] = Pane(Tally())
        return pane

    def changes(self, next_offset: int, now: int) -> list[tuple[bytes, bytes | None]]:
        """Records for the state topic: changed panes (stamped) and tombstones for expired ones."""
        self._fold()
        records: list[tuple[bytes, bytes | None]] = []
        sizes = dict(self.steps)
        for key, pane in list(self.panes.items()):
            step, start, _ = key
            if now > start + sizes.get(step, step) + self.lateness + GRACE_S:
                del self.panes[key]
                records.append((self._key(key), None))
            elif pane.dirty:
                pane.stamp = max(pane.stamp, next_offset)
                pane.dirty = False
                value = {"stamp": pane.stamp, "tally": pane.tally.to_json()}
                records.append((self._key(key), json.dumps(value, separators=(",", ":")).encode()))
        position = {"next_offset": next_offset, "at": now}
        records.append((f"position|{self.topic}|{self.partition}".encode(), json.dumps(position).encode()))
        return records

    def _key(self, key: PaneKey) -> bytes:
        step, start, dim = key
        return f"pane|{self.topic}|{self.partition}|{step}|{start}|{dim}".encode()


#: survey -> the scores that are unhappy responses (tally.UNHAPPY, without a tuple per lookup)
_UNHAPPY_SCORES = {survey: frozenset(score for s, score in UNHAPPY if s == survey) for survey, _ in VALID_SCORES}


def _pending_value(path: str, value: Any) -> Any:
    """A dimension value as a hashable key, one per pane dimension: text as it is (the common case), None,
    or else a 1-tuple of the pane's `path=value` (never equal to a text value)."""
    return value if value is None or type(value) is str else (f"{path}={value}",)


def _dimension_key(paths: list[str]) -> Callable[[EventData], Any]:
    """The dimension values of an event as one hashable key (`_pending_value` each): the value itself for
    one dimension (the usual case, one call), a tuple for several."""
    getters = [(path, data_getter(path)) for path in paths]
    if len(getters) != 1:
        return lambda data: tuple(_pending_value(path, get(data)) for path, get in getters)
    path = paths[0]
    outer, _, inner = path.partition(".")
    if inner and outer == "customer":

        def customer_field(data: EventData) -> Any:
            value = data["customer"][inner]
            return value if value is None or type(value) is str else (f"{path}={value}",)

        return customer_field
    get = getters[0][1]
    return lambda data: _pending_value(path, get(data))


def _num(value: float | None) -> float:
    return -1.0 if value is None else value


class MetricState:
    """The metric records of the state topic: every partition's latest partials, and the marks beside them."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        #: (step, start, dim) -> {partition: (stamp, tally)}
        self.panes: dict[PaneKey, dict[int, tuple[int, Tally]]] = {}
        self.positions: dict[int, int] = {}  # partition -> wall clock of its owner's last checkpoint
        self.finals: dict[str, int] = {}  # snapshot key -> when its final was emitted
        self.firing: dict[str, bool] = {}  # "rule id|dimension" -> firing
        self.firing_slots: dict[
            str, str
        ] = {}  # "rule id|dimension" -> the firing that posted its alert (names its slot: delivery/slots.py)
        self.changed: set[PaneKey] = set()
        view.register("pane", self._pane)
        view.register("position", self._position)
        view.register("final", self._final)
        view.register("rule", self._rule)

    def restore(self, partition: int) -> dict[PaneKey, Pane]:
        """Copies of the latest partials of one input partition, for its new owner."""
        restored = {}
        for key, partials in self.panes.items():
            if partition in partials:
                stamp, tally = partials[partition]
                restored[key] = Pane(Tally.from_json(tally.to_json()), stamp=stamp)
        return restored

    def publish(self, records: list[tuple[bytes, bytes | None]]) -> None:
        self.view.publish(records)

    def mark_final(self, snapshot_key: str, now: int) -> None:
        self.view.publish([(self.view.key("final", snapshot_key), json.dumps({"at": now}).encode())])
        self.finals[snapshot_key] = now

    def set_firing(self, rule_key: str, firing: bool, slot: str | None = None) -> None:
        record: dict[str, Any] = {"firing": firing} | ({"slot": slot} if slot else {})
        self.view.publish([(self.view.key("rule", rule_key), json.dumps(record).encode())])
        self._firing(rule_key, record)

    def still_firing(self) -> list[str]:
        """The firings whose rule still fires: their alerts' records must outlive ALERT_RECORD_RETENTION."""
        return [slot for rule_key, slot in self.firing_slots.items() if self.firing.get(rule_key)]

    def _firing(self, rule_key: str, record: dict[str, Any]) -> None:
        self.firing[rule_key] = record["firing"]
        if record.get("slot"):
            self.firing_slots[rule_key] = record["slot"]
        else:
            self.firing_slots.pop(rule_key, None)

    def expire(self, now: int) -> None:
        """Forget final marks emitted long ago (the panes of their windows are gone too)."""
        for key in [k for k, at in self.finals.items() if at + 2 * GRACE_S < now]:
            del self.finals[key]
            self.view.publish([(self.view.key("final", key), None)])

    # -- records read back from the state topic ---------------------------------------------

    def _pane(self, rest: str, value: bytes | None) -> None:
        partition, step, start, dim = rest.split("|", 3)
        pane_key = (int(step), int(start), dim)
        partials = self.panes.setdefault(pane_key, {})
        if value is None:
            partials.pop(int(partition), None)
            if not partials:
                del self.panes[pane_key]
        else:
            data = json.loads(value)
            partials[int(partition)] = (data["stamp"], Tally.from_json(data["tally"]))
        self.changed.add(pane_key)

    def _position(self, rest: str, value: bytes | None) -> None:
        if value is not None:
            self.positions[int(rest)] = json.loads(value)["at"]

    def _final(self, rest: str, value: bytes | None) -> None:
        if value is None:
            self.finals.pop(rest, None)
        else:
            self.finals[rest] = json.loads(value)["at"]

    def _rule(self, rest: str, value: bytes | None) -> None:
        if value is not None:
            self._firing(rest, json.loads(value))
