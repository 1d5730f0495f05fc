"""The records of a HEARD follow-up task on FOLLOWUP_TOPIC (key: the task id).

`followup.opened` is the task, as a rule opened it for an unhappy answer; `followup.updated`
adds a later answer to it (a throttled repeat, see alerting/throttle.py). Ids follow from the
event id, so a redelivered event republishes the same task and consumers can deduplicate.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ..events import Customer, FeedbackEvent, Survey
from .heard import TaskStep, heard_steps
from .spec import FollowupSpec, Severity


class FollowUpTask(BaseModel):
    """A `followup.opened` record on `FOLLOWUP_TOPIC`; the Kafka key is `task_id`."""

    type: Literal["followup.opened"] = "followup.opened"
    task_id: str = Field(description="Deterministic per event: a redelivered event yields the same id.")
    event_id: str
    rule_id: str = Field(description="The rule that owns the task (highest severity among those that matched).")
    matched_rules: list[str] = Field(description="Every rule that matched the event, in file order.")
    severity: Severity
    owner: str
    opened_at: datetime
    due_at: datetime = Field(description="opened_at + the owning rule's due_in.")
    customer: Customer
    survey: Survey
    score: int
    comment: str | None
    steps: list[TaskStep] = Field(description="The five HEARD steps, in order.")
    status: Literal["open"] = "open"


class FollowUpUpdate(BaseModel):
    """A `followup.updated` record on FOLLOWUP_TOPIC (key: the task id): one more answer for an open task."""

    type: Literal["followup.updated"] = "followup.updated"
    task_id: str
    event_id: str = Field(description="The new answer.")
    rule_id: str
    matched_rules: list[str]
    updated_at: datetime
    answers_in_episode: int = Field(description="Answers in this task's throttle window so far, the first included.")
    customer: Customer
    survey: Survey
    score: int
    comment: str | None


def task_id_for(event_id: str) -> str:
    """One event opens at most one task, so the id follows from the event id.

    Redelivery after a crash republishes the same id, which lets consumers deduplicate.
    """
    return "task-" + hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).hexdigest()


def open_task(
    event: FeedbackEvent,
    rule_id: str,
    matched_rules: list[str],
    severity: Severity,
    spec: FollowupSpec,
    now: datetime,
    owner: str | None = None,
) -> FollowUpTask:
    """`owner`: the routed owner (see rules/routing.py); the rule's own when not given."""
    return FollowUpTask(
        task_id=task_id_for(event.event_id),
        event_id=event.event_id,
        rule_id=rule_id,
        matched_rules=matched_rules,
        severity=severity,
        owner=owner or spec.owner,
        opened_at=now,
        due_at=now + spec.due_in,
        customer=event.customer,
        survey=event.survey,
        score=event.score,
        comment=event.comment,
        steps=heard_steps(spec.guidance),
    )
