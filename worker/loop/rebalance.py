"""The rebalance listener: settle, publish and commit before partitions move; restore after.

kafka-python 3 calls it on its IO thread, possibly while the worker thread is mid-batch, and
a blocking commit() may not run there. So each callback takes the worker's lock between
batches (yielding to the IO loop while it waits) and awaits the async commit. What to do with
the partitions is the loop's business (`Partitions`, implemented by app.Worker). The private
kafka-python attributes this reads are listed and checked in stream/membership.py.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

from kafka import AsyncConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from ..stream import Checkpoint

log = logging.getLogger("worker")


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
            await self.worker.consumer._net.sleep(0.01)  # type: ignore[attr-defined]  # kafka-python private, in membership.PRIVATE_ATTRIBUTES (checked at start-up)

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._locked()
        try:
            offsets = self.worker.revoked(list(revoked))
        finally:
            self.worker.lock.release()
        if offsets:
            try:
                # The blocking commit() may not run on the IO thread; this is the coroutine it wraps.
                await self.worker.consumer._coordinator._commit_offsets_sync_async(offsets)  # type: ignore[attr-defined]  # kafka-python private, in membership.PRIVATE_ATTRIBUTES (checked at start-up)
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
