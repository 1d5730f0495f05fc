"""The stream's bookkeeping in Kafka: what may be committed, dead letters, the state topic, the loop's counters.

- checkpoint.py: the commit sequence (an event's offset is a `Hold`, released once; nothing is
  committed before what it caused is in Kafka);
- deadletter.py: what could not be handled, with the reason and the exact input, on DLQ_TOPIC;
- state.py: the compacted STATE_TOPIC every replica reads (partials, throttles, posts, tasks);
- counters.py: what the loop has done (the progress line, the exit summary, /metrics);
- membership.py: the kafka-python internals the worker reads, checked at start-up, and whether this
  worker may have been evicted from its group (`Membership`).

It knows Kafka and nothing of rules, tasks or Slack, so every layer above can use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer

from .checkpoint import Backpressure, Checkpoint, Hold, Origin, PartitionState
from .counters import Stats
from .deadletter import DeadLetter, DeadLetters, Record, describe_validation_error
from .membership import PRIVATE_ATTRIBUTES, SUPPORTED_KAFKA_PYTHON, Membership, check_kafka_internals
from .state import StateView


@dataclass(frozen=True)
class Stream:
    """One worker's hold on the stream, built once (service.py) and shared by the loop and every step that holds
    an offset, dead-letters a record or counts what it did."""

    consumer: KafkaConsumer
    producer: KafkaProducer
    checkpoint: Checkpoint
    membership: Membership
    dead_letters: DeadLetters
    stats: Stats

    @classmethod
    def open(cls, consumer: KafkaConsumer, producer: KafkaProducer, commit_interval_s: float, dlq_topic: str, metrics_topic: str) -> Stream:
        checkpoint = Checkpoint(consumer, producer, commit_interval_s)
        return cls(consumer, producer, checkpoint, Membership(consumer), DeadLetters(dlq_topic, checkpoint.publish, metrics_topic), Stats())


__all__ = [
    "PRIVATE_ATTRIBUTES",
    "SUPPORTED_KAFKA_PYTHON",
    "Backpressure",
    "Checkpoint",
    "DeadLetter",
    "DeadLetters",
    "Hold",
    "Membership",
    "Origin",
    "PartitionState",
    "Record",
    "StateView",
    "Stats",
    "Stream",
    "check_kafka_internals",
    "describe_validation_error",
]
