"""Replay the feedback topic itself, read without a group and never committed.

The topic is read with a plain KafkaConsumer that has no group: it is assigned every
partition, never commits and never joins the worker's group, so a backtest against
production cannot move the worker's offsets or trigger a rebalance. It stops at the moment
the command started (records stamped later are left for the worker) or when the topic has
been quiet for a while: `end_offsets()` is not trusted, as the embedded Tansu broker gets it
wrong (its `offsets_for_times()` too, hence the timestamp filter on every record).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .progress import Progress
from .replay import Replay, SourceUnavailable

IDLE_STOP_S = 2.0  # a topic quiet this long is read to its end
POLL_MS = 200
CONNECT_TIMEOUT_S = 10.0  # kafka-python waits 30 s by default: long for someone at a terminal


def replay_topic(
    config: dict[str, Any],
    topic: str,
    since_ms: int,
    replay: Replay,
    progress: Progress | None = None,
    until_ms: int | None = None,
    idle_stop_s: float = IDLE_STOP_S,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> dict[int, tuple[int, int]]:
    """Feed the records of `topic` stamped in [since_ms, until_ms] to the replay, in partition order.

    `config`: kafka-python client settings (bootstrap, security); group settings are forced off.
    Returns partition -> (first, last) offset read, for the report.
    """
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    until_ms = int(time.time() * 1000) if until_ms is None else until_ms
    try:
        consumer = KafkaConsumer(
            **(
                config
                | {
                    "group_id": None,
                    "enable_auto_commit": False,
                    "max_poll_records": 5000,
                    "fetch_max_bytes": 16 * 1024 * 1024,
                    "bootstrap_timeout_ms": int(connect_timeout_s * 1000),
                }
            )
        )
    except KafkaError as err:
        where = ",".join(config["bootstrap_servers"])
        raise SourceUnavailable(
            f"cannot reach Kafka at {where} within {connect_timeout_s:g} s ({type(err).__name__})", usage=False
        ) from None
    read: dict[int, tuple[int, int]] = {}
    try:
        partitions = _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        active = set(tps)
        for tp, found in consumer.offsets_for_times({tp: since_ms for tp in tps}).items():
            if found is None:  # no record stamped at or after `since`
                active.discard(tp)
            else:
                consumer.seek(tp, found.offset)
        if len(active) < len(tps):
            consumer.pause(*(set(tps) - active))
        quiet_since = time.monotonic()
        while active:
            batches = consumer.poll(timeout_ms=POLL_MS)
            if not batches:
                if time.monotonic() - quiet_since >= idle_stop_s:
                    break
                continue
            quiet_since = time.monotonic()
            for tp, records in batches.items():
                if tp not in active:
                    continue
                values: list[bytes | None] = []
                offsets: list[int] = []
                done = False
                for record in records:
                    if record.timestamp > until_ms:  # appended after the command started: the rest is newer still
                        done = True
                        break
                    if record.timestamp >= since_ms:
                        values.append(record.value)
                        offsets.append(record.offset)
                if values:
                    replay.feed(values, _offset_namer(tp.partition, offsets), skip_blank=False)
                    first = read.get(tp.partition, (offsets[0], 0))[0]
                    read[tp.partition] = (first, offsets[-1])
                if done:
                    active.discard(tp)
                    consumer.pause(tp)
            if progress is not None:
                progress.update(replay.read)
    except KafkaError as err:
        raise SourceUnavailable(f"reading {topic}: {type(err).__name__}: {err}", usage=False) from None
    finally:
        consumer.close(autocommit=False)
    return read


def _partitions(consumer: Any, topic: str, wait_s: float = 3.0) -> list[int]:
    """The topic's partitions; metadata may take a moment to arrive."""
    deadline = time.monotonic() + wait_s
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        if time.monotonic() >= deadline:
            raise SourceUnavailable(f"topic {topic!r} not found")
        time.sleep(0.1)


def _offset_namer(partition: int, offsets: list[int]) -> Callable[[int], str]:
    return lambda i: f"partition {partition} offset {offsets[i]}"
