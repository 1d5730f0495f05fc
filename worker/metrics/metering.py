"""Metrics inside the worker loop: count, checkpoint, restore on rebalance, emit.

The worker calls four things and nothing else:
    count_data() on the hot path, for each valid event (count() takes a FeedbackEvent instead);
    assigned()  / revoked() from the rebalance listener;
    checkpoint() from the commit sequence, before the producer is flushed;
    tick()      about once a second.
See partials.py for why this stays exact across crashes and replicas.
"""

from __future__ import annotations

import logging

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from ..events import EventData, FeedbackEvent
from .emitter import SnapshotEmitter
from .loop import LoopBook
from .partials import MetricState, PartitionMetrics
from .windows import MetricsConfig

log = logging.getLogger(__name__)


class Metering:
    def __init__(
        self,
        config: MetricsConfig,
        input_topic: str,
        state: MetricState,
        metrics_topic: str,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        loop: LoopBook | None = None,
    ) -> None:
        """`loop`: the tasks' lifecycle entries (fed from the cases by the wiring), for the snapshots' loop KPIs."""
        self.config = config
        self.input_topic = input_topic
        self.consumer = consumer
        self.partitions: dict[int, PartitionMetrics] = {}
        self.state = state
        self.emitter = SnapshotEmitter(config, state, producer, metrics_topic, self.partitions.__contains__, self._count_partitions, loop)
        self._partition_count = 0

    def start(self) -> None:
        """After the worker caught up with the state topic (StateView.sync)."""
        log.info("metric state loaded: %d panes from %s", len(self.state.panes), self.state.view.topic)

    def count(self, partition: int, event: FeedbackEvent, ts: int, offset: int, now: int) -> bool:
        """The hot path. False: too late for every window (counted as late)."""
        metrics = self.partitions.get(partition)
        if metrics is None:  # not restored: can only happen between revoke and reassignment
            return True
        return metrics.add(event, ts, offset, now)

    def count_data(self, partition: int, data: EventData, ts: int, offset: int, now: int) -> bool:
        """`count` for EventData (events.event_data): the worker's hot path."""
        metrics = self.partitions.get(partition)
        if metrics is None:
            return True
        return metrics.add_data(data, ts, offset, now)

    def assigned(self, tps: list[TopicPartition]) -> None:
        """Restore the partials of newly owned partitions before any of their events is counted.

        The worker has just synced the state topic, so it holds everything the previous owner published."""
        for tp in tps:
            if tp.topic == self.input_topic:  # always from the state topic: memory may hold unpublished counts
                panes = self.state.restore(tp.partition)
                self.partitions[tp.partition] = PartitionMetrics(self.input_topic, tp.partition, self.config, panes)
        self._partition_count = 0

    def revoked(self, tps: list[TopicPartition]) -> None:
        """After the final checkpoint of these partitions: their partials belong to the next owner."""
        for tp in tps:
            if tp.topic == self.input_topic:
                self.partitions.pop(tp.partition, None)
        self._partition_count = 0

    def checkpoint(self, next_offsets: dict[int, int], now: int, only: list[TopicPartition] | None = None) -> None:
        """Publish changed partials (stamped with the next input offset) and a position heartbeat."""
        numbers = None if only is None else {tp.partition for tp in only if tp.topic == self.input_topic}
        for partition, metrics in self.partitions.items():
            if numbers is None or partition in numbers:
                self.state.publish(metrics.changes(next_offsets.get(partition, 0), now))

    def tick(self, now: int) -> None:
        self.emitter.tick(now)

    def _count_partitions(self) -> int:
        if not self._partition_count:
            self._partition_count = len(self.consumer.partitions_for_topic(self.input_topic) or ())
        return self._partition_count
