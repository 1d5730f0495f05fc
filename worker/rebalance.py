"""The rebalance listener: settle, publish and commit before partitions move; restore after.

kafka-python 3 calls it on its IO thread, possibly while the worker thread is mid-batch, and
a blocking commit() may not run there. So each callback takes the worker's lock between
batches (yielding to the IO loop while it waits) and awaits the async commit. What to do with
the partitions is the loop's business (`Partitions`, implemented by app.Worker).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Protocol

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from .checkpoint import Checkpoint

log = logging.getLogger("worker")


class Membership:
    """Is this worker perhaps no longer a member of its group? (`in_doubt`, alerting/delivery.py rule 4)

    In doubt after half a session without word from the group coordinator: a heartbeat answered, or
    partitions assigned (a join or sync answered; no heartbeats are sent while a rebalance runs).
    The group may have evicted it (after a whole session) and given its partitions to another
    worker, though no callback says so until the coordinator answers. kafka-python keeps the
    heartbeat times on its coordinator, with no public API: without them (another client version),
    never in doubt."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        heartbeat = getattr(getattr(consumer, "_coordinator", None), "heartbeat", None)
        self._heartbeat = heartbeat if hasattr(heartbeat, "last_receive") else None
        self._limit_s = heartbeat.config["session_timeout_ms"] / 2000 if self._heartbeat is not None else math.inf
        self._joined = -math.inf

    def joined(self) -> None:
        """Partitions were just assigned: the coordinator answered."""
        self._joined = time.monotonic()

    def in_doubt(self) -> bool:
        if self._heartbeat is None:
            return False
        # Only answers count: finding the coordinator again resets kafka-python's other timer, and says
        # nothing of the membership. Before any answer, just after subscribing, there is nothing to doubt.
        last = max(self._heartbeat.last_receive, self._joined)
        return math.isfinite(last) and time.monotonic() - last > self._limit_s


class Partitions(Protocol):
    """What the listener needs of the worker: its lock, its clients, and what to do on each change."""

    lock: threading.Lock
    consumer: KafkaConsumer
    checkpoint: Checkpoint

    def assigned(self, partitions: list[TopicPartition]) -> None: ...

    def revoked(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]: ...

    def lost(self, partitions: list[TopicPartition]) -> None: ...


class Rebalance(AsyncConsumerRebalanceListener):
    """kafka-python 3 runs these on its IO thread while the worker thread waits in poll()."""

    def __init__(self, worker: Partitions, first: str = "") -> None:
        self.worker = worker
        self.first = first  # the topic listed first in the log (the feedback topic; then the task actions)

    async def _locked(self) -> None:
        """Wait for the worker thread to finish its batch, without blocking the IO loop it may need."""
        while not self.worker.lock.acquire(blocking=False):
            await self.worker.consumer._net.sleep(0.01)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._locked()
        try:
            offsets = self.worker.revoked(list(revoked))
        finally:
            self.worker.lock.release()
        if offsets:
            try:
                # The blocking commit() may not run on the IO thread; this is the coroutine it wraps.
                await self.worker.consumer._coordinator._commit_offsets_sync_async(offsets)
                self.worker.checkpoint.committed(offsets)
            except Exception as err:  # at-least-once still holds: the next owner redoes uncommitted events
                log.warning("could not commit before giving up partitions (%s): their uncommitted events will be redone", err)

    async def on_partitions_lost(self, lost: Any) -> None:
        log.warning("partitions lost (evicted from the group): %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(lost)))
        await self._locked()
        try:
            self.worker.lost(list(lost))
        finally:
            self.worker.lock.release()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._locked()
        try:
            self.worker.assigned(list(assigned))
        finally:
            self.worker.lock.release()
        ordered = sorted(assigned, key=lambda tp: (tp.topic != self.first, tp.topic, tp.partition))
        log.info("assigned partitions: %s", ", ".join(f"{tp.topic}[{tp.partition}]" for tp in ordered) or "none")
