"""Dead letters: what could not be handled, with the reason and the exact input, on `DLQ_TOPIC`.

A message lands here instead of stopping the worker or vanishing. Keeping the original
bytes (as text, or base64 when they are not UTF-8) and its source offset means it can be
inspected, fixed and replayed.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

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

    type: Literal["feedback.invalid", "alert.undeliverable"] = "feedback.invalid"
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


def describe_validation_error(exc: ValidationError, value: bytes | None) -> tuple[str, list[ErrorDetail]]:
    """Turn a pydantic error into a one-line reason that names the field, plus the full list."""
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
        reason = f"event: {first.message}"
    if len(details) > 1:
        reason += f" (and {len(details) - 1} more)"
    return reason, details


def invalid_event(exc: ValidationError, value: bytes | None, source: Source) -> DeadLetter:
    reason, details = describe_validation_error(exc, value)
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
