"""Metric state that stays exact across crashes and replicas.

Each worker counts the input partitions it owns into *partials*: one Tally per
(input partition, pane, dimension value), stamped with the input offset it includes up to.
At every checkpoint, before input offsets are committed, changed partials are published to
a compacted state topic (METRICS_STATE_TOPIC, one partition), so that topic is never behind
the committed offsets.

- Crash and restart (or a rebalance): the new owner restores the partition's partials from
  the state topic and skips, *for metrics only*, every replayed event below a pane's stamp.
  A pane published just before the crash already includes those events; one that was not
  published does not. No event is counted twice or lost, whatever moment the crash hits.
- Several replicas: every worker reads the whole state topic (StateView), so it knows the
  latest partial of every partition. A snapshot is the sum of the latest partials
  (replace, never add: re-reading a record is harmless).

Record keys (the value is JSON; None is a tombstone):
    pane|<input topic>|<partition>|<step s>|<start s>|<dimension>   {"stamp", "tally"}
    position|<input topic>|<partition>                               {"next_offset", "at"}
    final|<input topic>|<snapshot key>                               {"at"}  (a final was emitted)
    rule|<input topic>|<rule id>|<dimension>                         {"firing"}
    throttle|<input topic>|<rule id>|<key value>                     an open throttle episode (throttle.py)
    silence|<input topic>|<id>                                       a silence (silences.py)
    sync|<input topic>|<token>                                       a marker, see StateView.sync
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .events import FeedbackEvent, field_getter
from .metrics import Tally
from .windows import MetricsConfig

log = logging.getLogger(__name__)

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


class StateView:
    """The latest record of every key in the state topic, read continuously (no group, no commits)."""

    def __init__(self, topic: str, input_topic: str, consumer: KafkaConsumer, producer: KafkaProducer) -> None:
        self.topic = topic
        self.input_topic = input_topic
        self.consumer = consumer
        self.producer = producer
        #: (step, start, dim) -> {partition: (stamp, tally)}
        self.panes: dict[PaneKey, dict[int, tuple[int, Tally]]] = {}
        self.positions: dict[int, int] = {}  # partition -> wall clock of its owner's last checkpoint
        self.finals: dict[str, int] = {}  # snapshot key -> when its final was emitted
        self.firing: dict[str, bool] = {}  # "rule id|dimension" -> firing
        self.episodes: dict[str, Any] = {}  # "rule id|key value" -> throttle.Episode (see throttle.py)
        self.silences: dict[str, Any] = {}  # id -> silences.Silence
        #: Episodes this worker changed since its last sync: their records coming back are echoes, older than memory.
        self.own_episodes: set[str] = set()
        self.changed: set[PaneKey] = set()
        self._markers: set[str] = set()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)

    def poll(self, timeout_ms: int = 0) -> int:
        count = 0
        for records in self.consumer.poll(timeout_ms=timeout_ms, max_records=5000).values():
            for record in records:
                self._apply(record.key.decode(), record.value)
                count += 1
        return count

    def sync(self, timeout_s: float = 30.0) -> None:
        """Read up to the current end of the topic: write a marker and read until it comes back.

        (The marker trick needs no end-offset query; the topic has one partition, so every
        record written before the marker is read before it.)
        """
        self.own_episodes.clear()  # after this, the topic is at least as new as memory
        token = uuid.uuid4().hex
        key = f"sync|{self.input_topic}|{token}".encode()
        self.producer.send(self.topic, key=key, value=b"{}")
        self.producer.flush()
        deadline = time.monotonic() + timeout_s
        while token not in self._markers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"metric state topic {self.topic} did not return our sync marker within {timeout_s:.0f}s")
            self.poll(timeout_ms=100)
        self._markers.discard(token)
        self.producer.send(self.topic, key=key, value=None)  # let compaction remove the marker

    def restore(self, partition: int) -> dict[PaneKey, Pane]:
        """Copies of the latest partials of one input partition, for its new owner."""
        restored = {}
        for key, partials in self.panes.items():
            if partition in partials:
                stamp, tally = partials[partition]
                restored[key] = Pane(Tally.from_json(tally.to_json()), stamp=stamp)
        return restored

    def publish(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            self.producer.send(self.topic, key=key, value=value)

    def mark_final(self, snapshot_key: str, now: int) -> None:
        self.publish([(f"final|{self.input_topic}|{snapshot_key}".encode(), json.dumps({"at": now}).encode())])
        self.finals[snapshot_key] = now

    def set_firing(self, rule_key: str, firing: bool) -> None:
        self.publish([(f"rule|{self.input_topic}|{rule_key}".encode(), json.dumps({"firing": firing}).encode())])
        self.firing[rule_key] = firing

    def expire(self, now: int) -> None:
        """Forget final marks emitted long ago (the panes of their windows are gone too)."""
        for key in [k for k, at in self.finals.items() if at + 2 * GRACE_S < now]:
            del self.finals[key]
            self.publish([(f"final|{self.input_topic}|{key}".encode(), None)])

    def _apply(self, key: str, value: bytes | None) -> None:
        kind, topic, rest = (key.split("|", 2) + ["", ""])[:3]
        if topic != self.input_topic:
            return  # another worker set sharing the state topic
        data = json.loads(value) if value else None
        if kind == "pane":
            partition, step, start, dim = rest.split("|", 3)
            pane_key = (int(step), int(start), dim)
            partials = self.panes.setdefault(pane_key, {})
            if data is None:
                partials.pop(int(partition), None)
                if not partials:
                    del self.panes[pane_key]
            else:
                partials[int(partition)] = (data["stamp"], Tally.from_json(data["tally"]))
            self.changed.add(pane_key)
        elif kind == "position" and data is not None:
            self.positions[int(rest)] = data["at"]
        elif kind == "final":
            if data is None:
                self.finals.pop(rest, None)
            else:
                self.finals[rest] = data["at"]
        elif kind == "rule" and data is not None:
            self.firing[rest] = data["firing"]
        elif kind == "throttle":
            from .throttle import Episode  # the view stores episodes; throttle.py owns their meaning

            if data is None:
                self.episodes.pop(rest, None)
            elif rest not in self.own_episodes:
                known = self.episodes.get(rest)
                parent = getattr(known, "parent", None) if known is not None and not data.get("thread_ts") else None
                self.episodes[rest] = Episode(**data, parent=parent)
        elif kind == "silence":
            from .silences import from_record

            if value is None:
                if self.silences.pop(rest, None) is not None:
                    log.info("silence %s ended", rest)
            else:
                try:
                    self.silences[rest] = silence = from_record(value)
                    log.info("silence %s: alerts held back for %s until %s (%s)", rest,
                             ", ".join(f"{k}={v}" for k, v in silence.matchers.items()), silence.ends_at.isoformat(), silence.reason)
                except ValueError as err:  # written by a newer or broken tool: ignore it, loudly
                    log.warning("ignoring unreadable silence record %s: %s", rest, err)
        elif kind == "sync" and data is not None:
            self._markers.add(rest)
