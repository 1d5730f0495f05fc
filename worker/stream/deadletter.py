"""Dead letters: what could not be handled, with the reason and the exact input, on `DLQ_TOPIC`.

A message lands here instead of stopping the worker or vanishing. Keeping the original
bytes (as text, or base64 when they are not UTF-8) and its source offset means it can be
inspected, fixed and replayed.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError


class ErrorDetail(BaseModel):
    field: str = Field(description="Dotted path of the offending field; empty for the whole message.")
    message: str
    type: str = Field(description="Machine-readable error type, e.g. missing, int_type, json_invalid.")


class Source(BaseModel):
    topic: str
    partition: int
    offset: int
    timestamp: int | None = Field(None, description="Kafka message timestamp, ms since the epoch.")


class DeadLetter(BaseModel):
    """A record on `DLQ_TOPIC`. The Kafka key is the original message's key."""

    type: Literal["feedback.invalid", "alert.undeliverable", "action.rejected"] = "feedback.invalid"
    error: str = Field(description="One-line reason naming the field.")
    errors: list[ErrorDetail] = Field(default_factory=list)
    original: str = Field(description="The original message value as text, or base64 if it is not UTF-8.")
    original_encoding: Literal["utf-8", "base64"] = "utf-8"
    source: Source
    alert: dict[str, Any] | None = Field(None, description="For alert.undeliverable: the rendered Slack message.")


def _original(value: bytes | None) -> tuple[str, Literal["utf-8", "base64"]]:
    if value is None:
        return "", "utf-8"
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), "base64"


# Everything str.splitlines() breaks a line at: a reason quoting the input (an unknown tag, say) stays one line.
_LINE_BREAKS = {c: repr(chr(c))[1:-1] for c in (0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029)}


def describe_validation_error(exc: ValidationError, value: bytes | None, what: str = "event") -> tuple[str, list[ErrorDetail]]:
    """Turn a pydantic error into a one-line reason that names the field, plus the full list.

    `what`: the record's kind, named when the problem is the whole record (an event, an action)."""
    details = [
        ErrorDetail(field=".".join(str(p) for p in err["loc"]), message=err["msg"].removeprefix("Value error, "), type=err["type"])
        for err in exc.errors(include_url=False)
    ]
    if value is None:
        return "empty message (no value)", details
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"message is not UTF-8 text (invalid byte at position {err.start})", details
    first = details[0] if details else None
    if first is None:
        return "invalid event", details
    if first.type == "json_invalid":
        reason = f"not valid JSON: {first.message.removeprefix('Invalid JSON: ')}"
    elif first.field:
        reason = f"{first.field}: {first.message}"
    else:
        reason = f"{what}: {first.message}"
    if len(details) > 1:
        reason += f" (and {len(details) - 1} more)"
    return reason.translate(_LINE_BREAKS), details


def invalid_event(exc: ValidationError, value: bytes | None, source: Source, what: str = "event") -> DeadLetter:
    reason, details = describe_validation_error(exc, value, what)
    original, encoding = _original(value)
    return DeadLetter(error=reason, errors=details, original=original, original_encoding=encoding, source=source)


def rejected_event(field: str, reason: str, value: bytes | None, source: Source) -> DeadLetter:
    """A well-formed event the worker still cannot accept, e.g. one dated in the future."""
    original, encoding = _original(value)
    detail = ErrorDetail(field=field, message=reason, type="value_error")
    return DeadLetter(error=f"{field}: {reason}", errors=[detail], original=original, original_encoding=encoding, source=source)


def undeliverable_alert(reason: str, value: bytes | None, source: Source, alert: dict[str, Any]) -> DeadLetter:
    original, encoding = _original(value)
    return DeadLetter(
        type="alert.undeliverable",
        error=reason,
        original=original,
        original_encoding=encoding,
        source=source,
        alert=alert,
    )


class Record(Protocol):
    """What a dead letter needs of a Kafka record (kafka-python's ConsumerRecord, a NamedTuple: read-only)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class DeadLetters:
    """Publishes dead letters to DLQ_TOPIC, keyed like the original; `publish` is the checkpoint's (a commit waits for them)."""

    def __init__(self, topic: str, publish: Callable[[str, bytes | None, bytes], None], metrics_topic: str) -> None:
        self.topic = topic
        self.publish = publish
        self.metrics_topic = metrics_topic  # the source named by a metric alert's letter (it has no input record)
        self.sent: Counter[str] = Counter()  # letter type -> letters published (/metrics: is the DLQ growing?)

    def invalid(self, record: Record, exc: ValidationError) -> DeadLetter:
        return self._send(record, invalid_event(exc, record.value, source_of(record)))

    def rejected(self, record: Record, field: str, reason: str) -> DeadLetter:
        return self._send(record, rejected_event(field, reason, record.value, source_of(record)))

    def invalid_action(self, record: Record, exc: ValidationError) -> DeadLetter:
        """A malformed action on TASK_ACTIONS_TOPIC."""
        letter = invalid_event(exc, record.value, source_of(record), "action")
        return self._send(record, letter.model_copy(update={"type": "action.rejected"}))

    def refused_action(self, record: Record, reason: str) -> DeadLetter:
        """A well-formed action the task's status does not allow (the reason names the task, its status and why)."""
        letter = rejected_event("action", reason, record.value, source_of(record))
        return self._send(record, letter.model_copy(update={"type": "action.rejected", "error": reason}))

    def undeliverable(self, record: Record | None, reason: str, alert: dict[str, Any]) -> DeadLetter:
        if record is None:  # a metric alert: no input record; offset -1 says so
            source = Source(topic=self.metrics_topic, partition=0, offset=-1)
            return self._send(None, undeliverable_alert(reason, None, source, alert))
        return self._send(record, undeliverable_alert(reason, record.value, source_of(record), alert))

    def _send(self, record: Record | None, letter: DeadLetter) -> DeadLetter:
        self.sent[letter.type] += 1
        self.publish(self.topic, record.key if record is not None else None, letter.model_dump_json().encode())
        return letter


def source_of(record: Record) -> Source:
    return Source(topic=record.topic, partition=record.partition, offset=record.offset, timestamp=record.timestamp)
