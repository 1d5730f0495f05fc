"""Reading a whole topic from a terminal command: every record from the beginning, no group, no commits.

`report`, `task list` and `report themes` read what the workers wrote (follow-up records, snapshots) without
disturbing them. Tansu's end offsets are wrong, so a topic is read until it stays quiet for `idle_s`.
"""

from __future__ import annotations

import time
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ..config import Settings
from .clients import common_config

#: kafka-python waits 30 s by default: long for someone at a terminal.
CONNECT_TIMEOUT_S = 10.0


class TopicUnreadable(Exception):
    """A topic cannot be read: the broker is unreachable, or the topic does not exist. Says which."""


def read_topic(
    settings: Settings, topic: str, setting: str, idle_s: float = 1.5, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> list[Any]:
    """Every record of `topic` (named by the setting `setting`, for the error), in order within each partition."""
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(
            **(
                common_config(settings)
                | {
                    "group_id": None,
                    "enable_auto_commit": False,
                    "max_poll_records": 5000,
                    "bootstrap_timeout_ms": int(connect_timeout_s * 1000),
                }
            )
        )
    except KafkaError as err:
        raise TopicUnreadable(
            f"cannot reach Kafka at {settings.kafka_bootstrap_servers} within {connect_timeout_s:g} s ({type(err).__name__})"
        ) from None
    try:
        deadline = time.monotonic() + 5
        while not (partitions := sorted(consumer.partitions_for_topic(topic) or ())):
            if time.monotonic() > deadline:
                raise TopicUnreadable(f"topic {topic!r} not found (is {setting} right?)")
            consumer.poll(timeout_ms=100)  # metadata arrives in the background
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < idle_s:  # no end offsets (Tansu's are wrong): read until it stays quiet
            batch = consumer.poll(timeout_ms=200)
            if batch:
                quiet_since = time.monotonic()
            for tp in sorted(batch):
                records.extend(batch[tp])
        return records
    except KafkaError as err:
        raise TopicUnreadable(f"reading {topic}: {type(err).__name__}: {err}") from None
    finally:
        consumer.close()
