"""kafka-python internals the worker reads, checked at start-up; and `Membership`, built on them.

kafka-python has no public API for three things the worker needs, so it reads private
attributes of the consumer: all of them are in `PRIVATE_ATTRIBUTES`, verified with the
kafka-python versions in `SUPPORTED_KAFKA_PYTHON` (pyproject.toml pins the same range).
Another version may lack one, and the worker says so at start-up, loudly, in one of two ways:

- Those the rebalance listener (loop/rebalance.py) cannot work without (`required`) refuse
  start-up: `check_kafka_internals` raises RuntimeError (service.py calls it). Without `_net.sleep`
  the listener would raise mid-rebalance and the partitions would move unsettled; without
  `_commit_offsets_sync_async` every rebalance would give its partitions up uncommitted, for
  the next owner to redo. Neither should be found out at the first rebalance in production.
- The membership ones (heartbeat times) only turn off one protection (`Membership`,
  delivery/outbox.py rule 5): the worker still works, so `Membership` logs one WARNING
  saying what is off and runs on, never in doubt.
"""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import kafka
from kafka import KafkaConsumer, TopicPartition

log = logging.getLogger("worker")

SUPPORTED_KAFKA_PYTHON = ">=3.0.12,<3.1"  # the versions PRIVATE_ATTRIBUTES was verified with; as in pyproject.toml


class PrivateAttribute(NamedTuple):
    """A private attribute of kafka-python's KafkaConsumer the worker reads, and what it serves."""

    path: str  # from the consumer: dotted attributes, then perhaps one ['key'] of a dict
    kind: Callable[[Any], bool]  # what it must be for the worker's use of it to work
    serves: str  # the protection or feature that needs it
    required: bool  # True: the worker refuses to start without it (check_kafka_internals)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


PRIVATE_ATTRIBUTES: tuple[PrivateAttribute, ...] = (
    PrivateAttribute(
        "_coordinator.heartbeat.last_receive",
        _number,
        "Membership.in_doubt: when the coordinator last answered a heartbeat (posts held while in doubt)",
        False,
    ),
    PrivateAttribute(
        "_coordinator.heartbeat.config['session_timeout_ms']",
        _number,
        "Membership.in_doubt: the session, half of which without an answer puts the membership in doubt",
        False,
    ),
    PrivateAttribute(
        "_net.sleep", callable, "Rebalance._locked: yield to kafka-python's IO loop while waiting for the worker's lock", True
    ),
    PrivateAttribute(
        "_coordinator._commit_offsets_sync_async",
        inspect.iscoroutinefunction,
        "Rebalance.on_partitions_revoked: commit before giving up partitions (commit() may not run on the IO thread)",
        True,
    ),
)
REQUIRED = tuple(a for a in PRIVATE_ATTRIBUTES if a.required)
MEMBERSHIP = tuple(a for a in PRIVATE_ATTRIBUTES if not a.required)

_ABSENT = object()


def _resolve(obj: Any, path: str) -> Any:
    """The value at `path` from obj, or _ABSENT."""
    attributes, _, key = path.partition("[")
    for name in attributes.split("."):
        obj = getattr(obj, name, _ABSENT)
        if obj is _ABSENT:
            return _ABSENT
    if key:
        try:
            return obj[key.rstrip("]").strip("'")]
        except (KeyError, TypeError, IndexError):
            return _ABSENT
    return obj


def missing_private_attributes(consumer: Any, attributes: tuple[PrivateAttribute, ...] = PRIVATE_ATTRIBUTES) -> list[str]:
    """The paths of `attributes` the consumer lacks, or has as something else (a kafka-python the worker does not know)."""
    return [a.path for a in attributes if (value := _resolve(consumer, a.path)) is _ABSENT or not a.kind(value)]


def _installed() -> str:
    return f"kafka-python {getattr(kafka, '__version__', '(unknown version)')} is installed; the worker supports {SUPPORTED_KAFKA_PYTHON}"


def check_kafka_internals(consumer: Any) -> None:
    """Refuse to start (RuntimeError) if the consumer lacks a private attribute the rebalance listener cannot work without."""
    missing = missing_private_attributes(consumer, REQUIRED)
    if missing:
        serves = "; ".join(a.serves for a in REQUIRED if a.path in missing)
        raise RuntimeError(
            f"cannot start: the Kafka consumer lacks {' and '.join(missing)} ({serves}). {_installed()}: "
            f"install a kafka-python in that range (see worker/stream/membership.py)."
        )


class Membership:
    """Is this worker perhaps no longer a member of its group? (`in_doubt`, delivery/outbox.py rule 5)

    In doubt after half a session without word from the group coordinator: a heartbeat answered, or
    partitions assigned (a join or sync answered; no heartbeats are sent while a rebalance runs).
    The group may have evicted it (after a whole session) and given its partitions to another
    worker, though no callback says so until the coordinator answers. kafka-python keeps the
    heartbeat times on its coordinator, with no public API (`MEMBERSHIP`): without them (another
    client version), one WARNING says so, and the membership is never in doubt."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        missing = missing_private_attributes(consumer, MEMBERSHIP)
        if missing:
            log.warning(
                "the Kafka consumer lacks %s, so posts are not held while the group membership is in doubt: "
                "an evicted worker may post what its partitions' new owner posts too. %s: install a kafka-python "
                "in that range (see worker/stream/membership.py).",
                " and ".join(missing),
                _installed(),
            )
        self.consumer = consumer
        self.put_back = 0  # records fetched while in doubt, not handled (/metrics)
        self._said = False
        self._heartbeat = None if missing else consumer._coordinator.heartbeat  # type: ignore[attr-defined]  # kafka-python private, in membership.PRIVATE_ATTRIBUTES (checked at start-up)
        self._limit_s = math.inf if missing else consumer._coordinator.heartbeat.config["session_timeout_ms"] / 2000  # type: ignore[attr-defined]  # kafka-python private, in membership.PRIVATE_ATTRIBUTES (checked at start-up)
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

    def screen(self, batch: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, list[Any]]:
        """The fetched records to handle: all of them, or none while in doubt.

        The group may have given the partitions to another worker, which handles their records; what this one would
        decide and write about them (a task, what it owes Slack) is a second decision about the same answers, which
        whoever takes the partition over next would post (found by the stalled-network fault test). So they are put
        back: each partition is sought back to its first record, fetched again once the coordinator answers."""
        if not batch:
            return batch
        if not self.in_doubt():
            self._said = False  # the next spell of doubt is said again
            return batch
        for tp, records in batch.items():
            if records:
                try:
                    self.consumer.seek(tp, records[0].offset)
                except ValueError:  # no longer assigned (kafka-python's word for it): nothing to fetch again
                    pass
                self.put_back += len(records)
        if not self._said:
            self._said = True
            log.warning(
                "no word from the Kafka group coordinator for half a session: not handling fetched records until it "
                "answers (the group may have given this worker's partitions to another, which handles them)"
            )
        return {}
