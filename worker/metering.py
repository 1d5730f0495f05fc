"""Metrics inside the worker loop: count, checkpoint, restore on rebalance, emit.

The worker calls four things and nothing else:
    count()     on the hot path, for each valid event;
    assigned()  / revoked() from the rebalance listener;
    checkpoint() from the commit sequence, before the producer is flushed;
    tick()      about once a second.
See metricstate.py for why this stays exact across crashes and replicas.
"""

from __future__ import annotations

import logging

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from .events import FeedbackEvent
from .metricstate import PartitionMetrics, StateView
from .snapshots import SnapshotEmitter
from .windows import MetricsConfig

log = logging.getLogger(__name__)


class Metering:
    def __init__(
        self,
        config: MetricsConfig,
        input_topic: str,
        view: StateView,
        metrics_topic: str,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
    ) -> None:
        self.config = config
        self.input_topic = input_topic
        self.consumer = consumer
        self.partitions: dict[int, PartitionMetrics] = {}
        self.view = view
        self.emitter = SnapshotEmitter(config, self.view, producer, metrics_topic, self.partitions.__contains__, self._count_partitions)
        self._partition_count = 0

    def start(self) -> None:
        """After the worker caught up with the state topic (StateView.sync)."""
        log.info("metric state loaded: %d panes from %s", len(self.view.panes), self.view.topic)

    def count(self, partition: int, event: FeedbackEvent, ts: int, offset: int, now: int) -> bool:
        """The hot path. False: too late for every window (counted as late)."""
        metrics = self.partitions.get(partition)
        if metrics is None:  # not restored: can only happen between revoke and reassignment
            return True
        return metrics.add(event, ts, offset, now)

    def assigned(self, tps: list[TopicPartition]) -> None:
        """Restore the partials of newly owned partitions before any of their events is counted.

        The worker has just synced the view, so it holds everything the previous owner published."""
        for tp in tps:
            if tp.topic == self.input_topic:  # always from the state topic: memory may hold unpublished counts
                panes = self.view.restore(tp.partition)
                self.partitions[tp.partition] = PartitionMetrics(self.input_topic, tp.partition, self.config, panes)
        self._partition_count = 0

    def revoked(self, tps: list[TopicPartition]) -> None:
        """After the final checkpoint of these partitions: their partials belong to the next owner."""
        for tp in tps:
            if tp.topic == self.input_topic:
                self.partitions.pop(tp.partition, None)
        self._partition_count = 0

    def checkpoint(self, next_offsets: dict[int, int], now: int, only: list[int] | None = None) -> None:
        """Publish changed partials (stamped with the next input offset) and a position heartbeat."""
        for partition, metrics in self.partitions.items():
            if only is None or partition in only:
                self.view.publish(metrics.changes(next_offsets.get(partition, 0), now))

    def tick(self, now: int) -> None:
        self.emitter.tick(now)

    def _count_partitions(self) -> int:
        if not self._partition_count:
            self._partition_count = len(self.consumer.partitions_for_topic(self.input_topic) or ())
        return self._partition_count
