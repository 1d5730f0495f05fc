"""The worker state topic: what every replica must know, in one compacted log (STATE_TOPIC).

Metric partials, throttle episodes, silences, metric-rule firing, rising complaints' term
counts and what was posted to Slack all live here, so a
restart or a second replica picks up exactly where the others are. The topic has one
partition: every record written before another is read before it, which `sync` relies on.

Each subsystem owns its kinds of record: it registers a handler for them and publishes
through the view. The view only reads, routes and writes; it knows no record's meaning, so
nothing below the subsystems depends on them. Keys are `<kind>|<input topic>|<rest>`, the
input topic scoping a worker set (several may share one state topic); the value is JSON, and
None is a tombstone (compaction removes the key).

    kind       owner                      rest
    pane       metrics/partials.py        <partition>|<step s>|<start s>|<dimension>
    position   metrics/partials.py        <partition>
    final      metrics/partials.py        <snapshot key>
    rule       metrics/partials.py        <rule id>|<dimension>
    throttle   alerting/throttle.py       <rule id>|<key value>
    silence    alerting/silences.py       <silence id>
    post       delivery/records.py        a slot's key (delivery/slots.py lists every form)
    task       tasks/ (Cases)             <task id>
    pool       tasks/ (Cases)             <pool>
    outcome    tasks/ (Cases)             <action id>
    cause      tasks/ (CauseModel)        <root cause>: the words of the tasks resolved with it (tasks/learning.py)
    terms      rising/counts.py           <partition>|<size s>|<start s>: a window's term counts (rising complaints)
    terms-seen rising/counts.py           <partition>|<size s>: where the partition's counted history starts
    sync       this module                <token>
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

log = logging.getLogger("worker")
MARKER_AGAIN_S = 5.0  # a marker not back by then is written again

#: Called with the rest of the key (after `<kind>|<input topic>|`) and the value (None: a tombstone).
Handler = Callable[[str, bytes | None], None]


class StateView:
    """The latest record of every key in the state topic, read continuously (no group, no commits)."""

    def __init__(self, topic: str, input_topic: str, consumer: KafkaConsumer, producer: KafkaProducer) -> None:
        self.topic = topic
        self.input_topic = input_topic
        self.consumer = consumer
        self.producer = producer
        self._handlers: dict[str, Handler] = {"sync": self._marker}
        self._before_sync: list[Callable[[], None]] = []
        self._markers: set[str] = set()
        self.synced = False  # a sync has completed: memory holds the whole topic (/readyz)
        #: Told of a record that could not be written (the checkpoint then refuses to commit past it).
        self.on_send_error: Callable[[Exception], None] | None = None
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)

    def register(self, kind: str, handler: Handler, before_sync: Callable[[], None] | None = None) -> None:
        """Route records of `kind` to `handler`; `before_sync` runs when a sync starts."""
        self._handlers[kind] = handler
        if before_sync is not None:
            self._before_sync.append(before_sync)

    def key(self, kind: str, rest: str) -> bytes:
        return f"{kind}|{self.input_topic}|{rest}".encode()

    def publish(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        for key, value in records:
            future = self.producer.send(self.topic, key=key, value=value, partition=0)  # one partition: no key hashing
            if self.on_send_error is not None:
                future.add_errback(self.on_send_error)

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
        for hook in self._before_sync:  # after this, the topic is at least as new as memory
            hook()
        tokens: list[str] = []

        def write_marker() -> None:
            tokens.append(uuid.uuid4().hex)
            self.producer.send(self.topic, key=self.key("sync", tokens[-1]), value=b"{}", partition=0)
            self.producer.flush()

        write_marker()
        deadline = time.monotonic() + timeout_s
        again = time.monotonic() + MARKER_AGAIN_S
        while not self._markers.intersection(tokens):
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"state topic {self.topic} did not return our sync marker within {timeout_s:.0f}s")
            if now > again:
                # Lost, e.g. to a topic another replica created at the same moment (seen on Tansu): any marker will do.
                log.info("state topic %s: sync marker not back after %.0f s, writing another", self.topic, MARKER_AGAIN_S)
                write_marker()
                again = now + MARKER_AGAIN_S
            self.poll(timeout_ms=100)
        self._markers.difference_update(tokens)
        self.synced = True
        for token in tokens:  # let compaction remove the markers
            self.producer.send(self.topic, key=self.key("sync", token), value=None, partition=0)

    def _apply(self, key: str, value: bytes | None) -> None:
        kind, topic, rest = (key.split("|", 2) + ["", ""])[:3]
        if topic != self.input_topic:
            return  # another worker set sharing the state topic
        handler = self._handlers.get(kind)
        if handler is not None:  # a kind nobody registered: written by a newer worker, or not needed here
            handler(rest, value)

    def _marker(self, token: str, value: bytes | None) -> None:
        if value is not None:
            self._markers.add(token)
