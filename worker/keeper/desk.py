"""Working tasks from outside the loop (the CLI, the demo): read every case, a task's history, send an action.

Cases are read from the worker state topic, as the workers see them (`followup_records` reads
every task's records from FOLLOWUP_TOPIC instead, for reports over any range of time). An
action is checked here first, so a refusal is immediate, then sent through TASK_ACTIONS_TOPIC
like any other, and the keeper's verdict is awaited (it records one per action id in the state topic).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from ..broker import (
    CONNECT_TIMEOUT_S,
    common_config,
    ensure_topics,
    make_producer,
    make_state_consumer,
    read_topic,
    state_topic,
)
from ..config import Settings
from ..stream import StateView
from ..tasks import ACTION, TASK_RECORD, Case, Cases, refusal

WAIT_S = 15.0


@dataclass(frozen=True)
class Verdict:
    applied: bool
    message: str  # why not, or what became of the task
    case: Case | None = None


class TaskDesk:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        topic = state_topic(settings)
        if settings.create_topics:
            ensure_topics(settings, [topic, settings.task_actions_topic], partitions=1, compacted=[topic])
        self._consumer, self._producer = make_state_consumer(settings), make_producer(settings)
        self.view = StateView(topic, settings.feedback_topic, self._consumer, self._producer)
        self.cases = Cases(self.view, settings.task_policy)
        self.view.sync()

    def __enter__(self) -> TaskDesk:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()

    def act(self, action: str, task_id: str, actor: dict[str, Any], wait_s: float = WAIT_S, **fields: Any) -> Verdict:
        """Check, send and await one action (acknowledge, assign, step, resolve, reopen) as `actor`."""
        sent = self.send(action, task_id, actor, **fields)
        if isinstance(sent, Verdict):
            return sent
        case = self.cases.get(task_id)
        deadline = time.monotonic() + wait_s
        while (outcome := self.cases.outcomes.get(sent)) is None:
            if time.monotonic() > deadline:
                return Verdict(
                    False,
                    f"no worker applied the action within {wait_s:g} s (is one running?); it stays queued on "
                    f"{self.settings.task_actions_topic} and is applied when one runs",
                    case,
                )
            self.view.poll(timeout_ms=200)
        if not outcome.applied:
            return Verdict(False, outcome.reason, self.cases.get(task_id))
        return Verdict(True, f"{action}: done", self.cases.get(task_id))

    def send(self, action: str, task_id: str, actor: dict[str, Any], **fields: Any) -> str | Verdict:
        """Check and send one action without awaiting it: its action id (`cases.outcomes` has its outcome once a
        worker applied it), or the Verdict refusing it now."""
        request = {"action": action, "task_id": task_id, "actor": actor, "action_id": f"{actor['source']}:{uuid.uuid4().hex}"} | fields
        parsed = ACTION.validate_python(request)
        case = self.cases.get(task_id)
        reason = (
            f"unknown task {task_id!r} (see `feedback-worker task list`)"
            if case is None
            else refusal(case, parsed, self.settings.task_policy)
        )
        if reason is not None:  # said now, not after a round trip; the keeper checks again anyway
            return Verdict(False, reason, case)
        self._producer.send(self.settings.task_actions_topic, key=task_id.encode(), value=parsed.model_dump_json().encode()).get(timeout=30)
        return parsed.action_id or request["action_id"]

    def history(self, task_id: str, idle_s: float = 1.5) -> list[dict[str, Any]]:
        """The task's records on FOLLOWUP_TOPIC, in order: its partition only (keyed by task id), read to its end."""
        settings = self.settings
        consumer = KafkaConsumer(**(common_config(settings) | {"group_id": None, "enable_auto_commit": False}))
        try:
            deadline = time.monotonic() + 5
            while not (partitions := sorted(consumer.partitions_for_topic(settings.followup_topic) or ())):
                if time.monotonic() > deadline:
                    return []  # no such topic (yet)
                consumer.poll(timeout_ms=100)  # metadata arrives in the background
            key = task_id.encode()
            tp = TopicPartition(settings.followup_topic, partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)])  # as producers pick it
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            records, quiet_since = [], time.monotonic()
            while time.monotonic() - quiet_since < idle_s:  # no end offsets (Tansu's are wrong): read until it stays quiet
                batch = consumer.poll(timeout_ms=200)
                if batch:
                    quiet_since = time.monotonic()
                records += [json.loads(r.value) for rs in batch.values() for r in rs if r.key == key]
            return [TASK_RECORD.validate_python(r).model_dump(mode="json") for r in records]
        finally:
            consumer.close()


def followup_records(settings: Settings, idle_s: float = 1.5, connect_timeout_s: float | None = None) -> tuple[list[Any], int]:
    """Every record of FOLLOWUP_TOPIC, from the beginning, in order within each task (a task's records share a partition);
    and how many records were not task records (skipped). No group, no commits: reading cannot disturb the workers."""
    from pydantic import ValidationError

    timeout = CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s
    records: list[Any] = []
    skipped = 0
    for record in read_topic(settings, settings.followup_topic, "FOLLOWUP_TOPIC", idle_s, timeout):
        try:
            records.append(TASK_RECORD.validate_json(record.value or b""))
        except ValidationError:
            skipped += 1
    return records, skipped
