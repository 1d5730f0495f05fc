"""Silences: "no Slack alerts for customer c-42 for two days, the account manager is on it".

    feedback-worker silence add --match customer.id=c-42 --for 2d --reason "account manager on it"
    feedback-worker silence list
    feedback-worker silence expire ID

A silenced match still opens its HEARD task (the loop stays closed) but posts no alert.
Silences are records in the worker state topic (key `silence|<input topic>|<id>`), so every
replica obeys them within a second, and they end by themselves at `ends_at`.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from ..events import FeedbackEvent, field_getter, is_known_path
from ..stream import StateView

log = logging.getLogger(__name__)


class Silence(BaseModel):
    id: str
    matchers: dict[str, str] = Field(description="Field path (or `rule`) -> value; all must equal.")
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_by: str = ""

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


def parse_matchers(items: list[str]) -> dict[str, str]:
    """`customer.id=c-42` (repeatable, ANDed); `rule=nps-detractor` matches the owning rule."""
    matchers: dict[str, str] = {}
    for item in items:
        path, sep, value = item.partition("=")
        path, value = path.strip(), value.strip()
        if not sep or not path or not value:
            raise ValueError(f"--match {item!r}: expected path=value, e.g. customer.id=c-42")
        if path != "rule" and not is_known_path(path):
            raise ValueError(f"--match {item!r}: unknown field path {path!r} (e.g. customer.id, customer.segment, rule)")
        matchers[path] = value
    if not matchers:
        raise ValueError("give at least one --match path=value")
    return matchers


def silenced_by(silences: dict[str, Silence], event: FeedbackEvent, rule_id: str, now: datetime) -> Silence | None:
    """The first active silence matching this event and owning rule, if any."""
    for silence in silences.values():
        if not silence.active(now):
            continue
        if all((rule_id if path == "rule" else _text(field_getter(path)(event))) == value for path, value in silence.matchers.items()):
            return silence
    return None


def silenced_metric(silences: dict[str, Silence], rule_id: str, dimension: dict[str, str], now: datetime) -> Silence | None:
    """For a metric rule's alert: `rule=<id>` and the snapshot's dimension (customer.segment=enterprise) can match."""
    for silence in silences.values():
        if silence.active(now) and all(
            (rule_id if path == "rule" else dimension.get(path)) == value for path, value in silence.matchers.items()
        ):
            return silence
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


class Silences:
    """The silences in the state topic, as every replica sees them; also what the CLI writes."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.by_id: dict[str, Silence] = {}
        view.register("silence", self._record)

    def holding(self, event: FeedbackEvent, rule_id: str, now: datetime) -> Silence | None:
        """The silence that holds back this event's alert, if any."""
        return silenced_by(self.by_id, event, rule_id, now) if self.by_id else None

    def holding_metric(self, rule_id: str, dimension: dict[str, str], now: datetime) -> Silence | None:
        return silenced_metric(self.by_id, rule_id, dimension, now) if self.by_id else None

    # -- the commands (run against Kafka, after a sync of the view) -------------------------------

    def add(self, matchers: dict[str, str], duration: timedelta, reason: str, by: str = "") -> Silence:
        now = datetime.now(UTC).replace(microsecond=0)
        silence = Silence(id=uuid.uuid4().hex[:8], matchers=matchers, starts_at=now, ends_at=now + duration, reason=reason, created_by=by)
        self.view.publish([(self.view.key("silence", silence.id), silence.model_dump_json().encode())])
        self.view.producer.flush()
        return silence

    def active(self) -> list[Silence]:
        now = datetime.now(UTC)
        return sorted((s for s in self.by_id.values() if s.active(now)), key=lambda s: s.ends_at)

    def expire(self, silence_id: str) -> Silence | None:
        """End a silence now (a tombstone: compaction removes it). None if there is no such silence."""
        silence = self.by_id.get(silence_id)
        if silence is None:
            return None
        self.view.publish([(self.view.key("silence", silence_id), None)])
        self.view.producer.flush()
        return silence

    def _record(self, silence_id: str, value: bytes | None) -> None:
        if value is None:
            if self.by_id.pop(silence_id, None) is not None:
                log.info("silence %s ended", silence_id)
            return
        try:
            self.by_id[silence_id] = silence = from_record(value)
        except ValueError as err:  # written by a newer or broken tool: ignore it, loudly
            log.warning("ignoring unreadable silence record %s: %s", silence_id, err)
            return
        log.info(
            "silence %s: alerts held back for %s until %s (%s)",
            silence_id,
            ", ".join(f"{k}={v}" for k, v in silence.matchers.items()),
            silence.ends_at.isoformat(),
            silence.reason,
        )


def describe(silence: Silence) -> str:
    matchers = ", ".join(f"{path}={value}" for path, value in silence.matchers.items())
    by = f" by {silence.created_by}" if silence.created_by else ""
    return f"{silence.id}  {matchers}  until {silence.ends_at.isoformat()}{by}: {silence.reason}"


def from_record(data: bytes) -> Silence:
    return Silence.model_validate(json.loads(data))
