"""Metric partials that stay exact across crashes and replicas.

Each worker counts the input partitions it owns into *partials*: one Tally per
(input partition, pane, dimension value), stamped with the input offset it includes up to.
At every checkpoint, before input offsets are committed, changed partials are published to
the worker state topic (STATE_TOPIC, see state.py), so that topic is never behind the
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
    rule|<input topic>|<rule id>|<dimension>                         {"firing"}
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..events import FeedbackEvent, field_getter
from ..state import StateView
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
    """The partials of one input partition owned by this worker."""

    def __init__(self, topic: str, partition: int, config: MetricsConfig, panes: dict[PaneKey, Pane] | None = None) -> None:
        self.topic = topic
        self.partition = partition
        self.panes: dict[PaneKey, Pane] = panes or {}
        self.lateness = int(config.lateness.total_seconds())
        self.steps = sorted(config.steps().items())  # [(step, largest size using it)]
        self.dimensions = [(path, field_getter(path)) for path in config.dimensions]
        self.late = 0
        # Below this offset events were seen before the last checkpoint: their late counts are in the restored panes.
        self.resume_at = max((pane.stamp for pane in self.panes.values()), default=0)

    def add(self, event: FeedbackEvent, ts: int, offset: int, now: int) -> bool:
        """Count one event into one pane per step and dimension. False if too late for every window."""
        dims = [""]
        for path, get in self.dimensions:
            value = get(event)
            if value is not None:
                dims.append(f"{path}={value}")
        customer = event.customer
        counted = False
        for step, size in self.steps:
            start = ts - ts % step
            if now > start + size + self.lateness:
                continue  # every window holding this pane has closed
            counted = True
            for dim in dims:
                pane = self._pane((step, start, dim))
                if offset >= pane.stamp:
                    pane.tally.add(event.survey, event.score, customer.id, ts, customer.monthly_value)
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

    def _pane(self, key: PaneKey) -> Pane:
        pane = self.panes.get(key)
        if pane is None:
            pane = self.panes[key] = Pane(Tally())
        return pane

    def changes(self, next_offset: int, now: int) -> list[tuple[bytes, bytes | None]]:
        """Records for the state topic: changed panes (stamped) and tombstones for expired ones."""
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


class MetricState:
    """The metric records of the state topic: every partition's latest partials, and the marks beside them."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        #: (step, start, dim) -> {partition: (stamp, tally)}
        self.panes: dict[PaneKey, dict[int, tuple[int, Tally]]] = {}
        self.positions: dict[int, int] = {}  # partition -> wall clock of its owner's last checkpoint
        self.finals: dict[str, int] = {}  # snapshot key -> when its final was emitted
        self.firing: dict[str, bool] = {}  # "rule id|dimension" -> firing
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

    def set_firing(self, rule_key: str, firing: bool) -> None:
        self.view.publish([(self.view.key("rule", rule_key), json.dumps({"firing": firing}).encode())])
        self.firing[rule_key] = firing

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
            self.firing[rest] = json.loads(value)["firing"]
