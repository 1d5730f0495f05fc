"""The commit sequence, in one place: what may be committed, and when.

At-least-once means an offset is committed only after everything the event caused is
done: its task, any dead letter and the record of what it owes Slack acknowledged by the
broker (delivery/: Slack's answer is not waited for). Most events finish synchronously; a few
wait a little (an alert for a pool's member, a note for its alert), holding their offsets
(`Hold`). Per partition we keep the offsets still held; the committable position is the
oldest held offset, or one past the last event seen.

Commits happen per interval, not per message:
  1. produce state changes (the metric partials, see metrics/partials.py) through `before_flush`;
  2. flush the producer (tasks, dead letters, state) and fail if any send failed;
  3. commit, per partition, the position below which everything is done.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

from .counters import Stats

log = logging.getLogger(__name__)


class PublishError(Exception):
    """A record the worker produced was not acknowledged; offsets must not move past it."""


@dataclass
class PartitionState:
    next_offset: int = -1  # one past the last offset seen; -1: nothing seen yet
    waiting: dict[int, int] = field(default_factory=dict)  # offset -> messages still to settle; insertion order == offset order
    committed: int = -1
    started: int = -1  # the first offset seen since assigned: where the group's committed position was (/metrics lag)
    abandon: threading.Event = field(default_factory=threading.Event)  # set when revoked or stopping

    @property
    def committable(self) -> int:
        return next(iter(self.waiting)) if self.waiting else self.next_offset


class Hold:
    """An event's offset, held until what the event caused is done; `release()` it once (again is a no-op).

    The committable position of its partition stays at or below the offset while it is held. A hold of a
    partition given up since is released harmlessly: its `abandon` event is set, and the next owner redoes it."""

    __slots__ = ("state", "offset", "_held")

    def __init__(self, state: PartitionState, offset: int) -> None:
        self.state = state
        self.offset = offset
        self._held = True
        state.waiting[offset] = state.waiting.get(offset, 0) + 1

    @property
    def abandon(self) -> threading.Event:
        return self.state.abandon

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        waiting = self.state.waiting
        left = waiting.get(self.offset, 0) - 1
        if left > 0:
            waiting[self.offset] = left
        else:
            waiting.pop(self.offset, None)


@dataclass(frozen=True, slots=True)
class Origin:
    """The record (an event, a task action) a message is for: where it came from, and its partition's bookkeeping."""

    tp: TopicPartition
    record: Any  # kafka-python's ConsumerRecord
    state: PartitionState

    def hold(self) -> Hold:
        return Hold(self.state, self.record.offset)


class Backpressure:
    """Stop fetching while too many alerts wait for Slack; polling on keeps the group membership."""

    def __init__(self, consumer: KafkaConsumer, limit: int, stats: Stats) -> None:
        self.consumer = consumer
        self.limit = limit
        self.stats = stats
        self.paused = False
        self._next_warning = 0.0

    def check(self, waiting: int) -> None:
        """Between batches: pause at `limit` alerts waiting, resume at half of it."""
        if not self.paused and waiting >= self.limit:
            self.consumer.pause(*self.consumer.assignment())
            self.paused = True
            self.stats.pauses += 1
            if time.monotonic() >= self._next_warning:  # once a minute, not on every pause of a long burst
                self._next_warning = time.monotonic() + 60
                log.warning(
                    "%d alerts waiting for Slack (MAX_IN_FLIGHT_ALERTS): pausing consumption until it catches up "
                    "(%d pauses so far; Slack is the bottleneck, nothing is lost)",
                    waiting,
                    self.stats.pauses,
                )
        elif self.paused and waiting <= self.limit // 2:
            self.consumer.resume(*self.consumer.paused())
            self.paused = False
            log.debug("Slack caught up: resuming consumption")

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """New partitions start paused while the others are."""
        if self.paused:
            self.consumer.pause(*partitions)


class Checkpoint:
    def __init__(self, consumer: KafkaConsumer, producer: KafkaProducer, interval_s: float) -> None:
        self.consumer = consumer
        self.producer = producer
        self.interval_s = interval_s
        self.partitions: dict[TopicPartition, PartitionState] = {}
        self._last_commit = time.monotonic()
        self.committed_at = time.monotonic()  # the last commit sequence that completed (/metrics: its age)
        self._send_error: Exception | None = None
        self._resume_at: dict[TopicPartition, int] = {}  # partitions given up: the first event not done (see rewind)
        #: Called with the partitions being committed (None: all) just before the flush.
        self.before_flush: list[Callable[[list[TopicPartition] | None], None]] = []

    # -- bookkeeping (hot path) ------------------------------------------------------------

    def seen(self, tp: TopicPartition, offset: int) -> PartitionState:
        state = self.partitions.get(tp)
        if state is None:
            state = self.partitions[tp] = PartitionState(started=offset)
        elif state.next_offset < 0:  # assigned, and this is its first event
            state.started = offset
        state.next_offset = offset + 1
        return state

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """New partitions: their bookkeeping starts now (what they owe Slack is given up with them, see `forget`)."""
        for tp in partitions:
            self.partitions.setdefault(tp, PartitionState())

    def hold(self, state: PartitionState, offset: int) -> Hold:
        """The event at `offset` is not done until the returned hold is released."""
        return Hold(state, offset)

    def publish(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> None:
        """Produce a record (a task, a dead letter) that the next commit waits for. `partition`: for a topic of one
        partition, 0 spares kafka-python's pure-Python hash of the key (~7 µs a record)."""
        self.producer.send(topic, key=key, value=value, partition=partition).add_errback(self.on_send_error)

    def on_send_error(self, error: Exception) -> None:
        """Errback for producer futures: remember the failure so the next commit refuses."""
        self._send_error = error

    def next_offsets(self, topic: str) -> dict[int, int]:
        """Partition of `topic` -> one past the last offset seen, for partitions seen so far."""
        return {tp.partition: s.next_offset for tp, s in self.partitions.items() if s.next_offset >= 0 and tp.topic == topic}

    @property
    def waiting(self) -> int:
        return sum(len(s.waiting) for s in self.partitions.values())

    # -- the commit sequence ---------------------------------------------------------------

    def due(self) -> bool:
        return time.monotonic() - self._last_commit >= self.interval_s

    def commit(self, partitions: list[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """Flush the producer, then commit what is done. Returns the committed positions."""
        offsets = self.prepare(partitions)
        if offsets:
            try:
                self.consumer.commit(offsets)
            except (CommitFailedError, KafkaTimeoutError) as err:
                # Evicted from the group (its network stalled past the session timeout) or the coordinator out of
                # reach: not committed. At-least-once holds: the next commit retries, or the partitions' new owner
                # redoes their uncommitted events (posting nothing twice, see delivery/records.py).
                log.warning("could not commit offsets (%s): they are committed later, or redone by the partitions' next owner", err)
                return {}
            self.committed(offsets)
        self.committed_at = time.monotonic()
        # (each has an offset, prepare() made them; kafka-python's type allows None)
        return {tp: m.offset for tp, m in offsets.items() if m.offset is not None}

    def prepare(self, partitions: list[TopicPartition] | None = None) -> dict[TopicPartition, OffsetAndMetadata]:
        """Steps 1 and 2: produce state, flush, and work out what may be committed (without committing)."""
        self._last_commit = time.monotonic()
        for produce_state in self.before_flush:
            produce_state(partitions)
        self.producer.flush()
        if self._send_error is not None:
            raise PublishError(f"a produced record was not acknowledged: {self._send_error}")
        offsets = {}
        for tp in partitions if partitions is not None else list(self.partitions):
            state = self.partitions.get(tp)
            if state is None or state.next_offset < 0:
                continue
            position = state.committable
            if position > state.committed:
                offsets[tp] = OffsetAndMetadata(position, "", -1)
        return offsets

    def committed(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """Step 3 done (by `commit`, or by the rebalance listener's async commit)."""
        for tp, meta in offsets.items():
            if tp in self.partitions and meta.offset is not None:  # it has one: prepare() made them
                self.partitions[tp].committed = meta.offset
        self.committed_at = time.monotonic()
        log.debug("committed %s", {f"{tp.topic}[{tp.partition}]": m.offset for tp, m in offsets.items()})

    def forget(self, partitions: list[TopicPartition], revoked: bool = True) -> None:
        """Drop given-up partitions; alerts still queued for them give up (the new owner redoes them).

        The new owner may be this worker: kafka-python keeps the fetch position of a partition that is
        revoked and assigned again in the same rebalance, past the events given up here. So where the
        first event not done was is kept, for `rewind`. Not for partitions lost (evicted from the group,
        `revoked=False`): kafka-python drops their positions, and another member may have had them and
        gone further; going back to where this worker stopped would redo its work (found by tests/faults)."""
        for tp in partitions:
            state = self.partitions.pop(tp, None)
            if state is not None:
                state.abandon.set()
                if state.next_offset >= 0 and revoked:
                    self._resume_at[tp] = state.committable
                else:
                    self._resume_at.pop(tp, None)

    def rewind(self, assigned: list[TopicPartition]) -> None:
        """Assigned partitions this worker gave up work of: fetch again from the first event it left undone.

        (Found by tests/faults: a worker that kept a partition through a rebalance went on past the
        digest it had dropped, and its answers never reached Slack.) Everything before that event is
        done, so nothing is skipped; what is refetched and was done posts nothing twice (delivery/records.py)."""
        for tp in assigned:
            position = self._resume_at.pop(tp, None)
            if position is not None:
                self.consumer.seek(tp, position)
        self._resume_at.clear()  # the others went to other workers: they start from the committed offsets

    def abandon_all(self) -> None:
        for state in self.partitions.values():
            state.abandon.set()
