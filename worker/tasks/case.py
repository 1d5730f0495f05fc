"""A task as it stands: the fold of its records, in order.

Status: open → acknowledged → resolved → closed (the customer's next answer, or none within the
recovery window); reopened = open again, by a person or by an answer that is still unhappy.

The fold is what every replica keeps (table.py, from the state topic) and what `task show`
rebuilds from FOLLOWUP_TOPIC; both give the same case, because `fold` is the only way a case
changes. Its `marks` are the moments the loop KPIs count (metrics/loop.py, tasks/kpis.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from .lifecycle import (
    EscalationReason,
    Lifecycle,
    StepDone,
    TaskAcknowledged,
    TaskAssigned,
    TaskClosed,
    TaskEscalated,
    TaskReopened,
    TaskResolved,
)
from .records import COMMENT_KEPT, Actor, FollowUpTask, FollowUpUpdate, Sla, SuggestedRootCause
from .spec import EscalateTo, Recheck

Status = Literal["open", "acknowledged", "resolved", "closed"]
#: What a case's timers can ask for when they run out.
Timer = Literal["not_acknowledged", "overdue", "no_response"]
APPLIED_KEPT = 200  # action ids remembered per task, so a retried action is applied once


class Escalation(BaseModel):
    reason: EscalationReason
    level: int
    at: datetime
    round: int = Field(0, description="How many times the task had been reopened: timers restart on a reopen.")


class Resolution(BaseModel):
    at: datetime
    by: Actor
    root_cause: str
    resolution: str
    customer_contacted: bool


class Mark(BaseModel):
    """One moment of the loop: what happened, when, and against which deadline (for the KPIs)."""

    kind: Literal["opened", "acknowledged", "escalated", "resolved", "reopened", "closed"]
    at: datetime
    due: datetime | None = Field(None, description="acknowledged/resolved: the SLA deadline it was measured against.")
    detail: str | None = Field(
        None, description="resolved: the root cause; reopened: the reason; closed: the outcome; escalated: the reason."
    )
    answer: str | None = Field(None, description="The event id of the customer's answer that closed or reopened it.")


class Case(BaseModel):
    task_id: str
    rule_id: str
    severity: str
    owner: str
    assignee: str | None = None
    customer_id: str
    customer_name: str | None = None
    monthly_value: float | None = None
    event_id: str
    opened_at: datetime
    sla: Sla
    acknowledge_within_s: int | None = None  # to restart the timers on a reopen
    due_in_s: int
    escalate_to: EscalateTo | None = None
    channel: str | None = None  # where its alert went (as routed)
    status: Status = "open"
    acknowledged_at: datetime | None = None
    acknowledged_by: Actor | None = None
    steps: dict[str, bool] = Field(default_factory=dict)
    escalations: list[Escalation] = Field(default_factory=list)
    resolution: Resolution | None = None
    reopened: int = 0
    answers: int = 1
    applied: list[str] = Field(default_factory=list)
    updated_at: datetime
    comment: str | None = None  # the first 500 characters: root-cause digests quote examples
    recheck: Recheck = "none"  # the follow-up survey asked for when it is resolved
    recovery_window_s: int = 14 * 86400
    dims: list[str] = Field(default_factory=list)  # metric dimensions of the opening answer, e.g. customer.segment=smb
    keywords: list[str] = Field(default_factory=list)  # its comment's stems (no stop words) and #themes: learned from once resolved
    suggested_root_cause: SuggestedRootCause | None = None  # as followup.opened said: the card shows it, the dialog preselects it
    outcome: Literal["recovered", "no_response"] | None = None  # once closed
    marks: list[Mark] = Field(default_factory=list)

    @property
    def unresolved(self) -> bool:
        return self.status in ("open", "acknowledged")

    @property
    def awaiting_answer(self) -> bool:
        """Resolved, and the customer was asked again: their next answer (or its absence) closes the loop."""
        return self.status == "resolved" and self.recheck != "none"

    def answer_window(self) -> tuple[datetime, datetime] | None:
        """(resolved at, end of the recovery window) while an answer can close or reopen it; None otherwise."""
        if self.status not in ("resolved", "closed") or self.resolution is None or self.recheck == "none":
            return None
        start = self.resolution.at
        return start, start + timedelta(seconds=self.recovery_window_s)

    def answered_by(self, event_id: str) -> bool:
        """This event already closed or reopened the task (a replayed answer)."""
        return any(mark.answer == event_id for mark in self.marks)

    def overdue(self, now: datetime) -> bool:
        return self.unresolved and now >= self.sla.resolve_by

    def escalated(self, reason: EscalationReason) -> bool:
        """Escalated for this reason since it was (re)opened."""
        return any(e.reason == reason and e.round == self.reopened for e in self.escalations)

    def due_timer(self, now: datetime) -> Timer | None:
        """The timer that has run out and not been acted on yet, if any: an SLA escalation, or no answer in time."""
        if self.awaiting_answer:
            window = self.answer_window()
            return "no_response" if window is not None and now >= window[1] else None
        if not self.unresolved:
            return None
        if (
            self.status == "open"
            and self.sla.acknowledge_by is not None
            and now >= self.sla.acknowledge_by
            and not self.escalated("not_acknowledged")
        ):
            return "not_acknowledged"
        if now >= self.sla.resolve_by and not self.escalated("overdue"):
            return "overdue"
        return None

    def next_due(self) -> datetime | None:
        """When a timer of this case runs out next (for the keeper's clock); None: nothing pending."""
        if self.awaiting_answer:
            window = self.answer_window()
            return window[1] if window is not None else None
        if not self.unresolved:
            return None
        moments = []
        if self.status == "open" and self.sla.acknowledge_by is not None and not self.escalated("not_acknowledged"):
            moments.append(self.sla.acknowledge_by)
        if not self.escalated("overdue"):
            moments.append(self.sla.resolve_by)
        return min(moments, default=None)


def opened(
    task: FollowUpTask,
    acknowledge_within: timedelta | None,
    due_in: timedelta,
    channel: str | None = None,
    recheck: Recheck = "none",
    recovery_window: timedelta = timedelta(days=14),
    dims: list[str] | None = None,
    keywords: list[str] | None = None,
) -> Case:
    sla = task.sla or Sla(resolve_by=task.due_at)
    return Case(
        task_id=task.task_id,
        rule_id=task.rule_id,
        severity=task.severity,
        owner=task.owner,
        assignee=task.assignee,
        customer_id=task.customer.id,
        customer_name=task.customer.name,
        monthly_value=task.customer.monthly_value,
        event_id=task.event_id,
        opened_at=task.opened_at,
        sla=sla,
        acknowledge_within_s=int(acknowledge_within.total_seconds()) if acknowledge_within else None,
        due_in_s=int(due_in.total_seconds()),
        escalate_to=task.escalate_to,
        channel=channel,
        updated_at=task.opened_at,
        comment=task.comment[:COMMENT_KEPT] if task.comment else None,
        recheck=recheck,
        recovery_window_s=int(recovery_window.total_seconds()),
        dims=dims or [],
        keywords=keywords or [],
        suggested_root_cause=task.suggested_root_cause,
        marks=[Mark(kind="opened", at=task.opened_at)],
    )


def fold(case: Case, record: FollowUpUpdate | Lifecycle, sla: Sla | None = None) -> Case:
    """The case after one more record. `sla`: the restarted timers, for a reopen."""
    changes: dict[str, object] = {"updated_at": record.at or case.updated_at}
    mark = None
    if isinstance(record, FollowUpUpdate):
        changes["answers"] = max(case.answers, record.answers_in_episode)
    elif isinstance(record, TaskAcknowledged):
        changes |= {"status": "acknowledged", "acknowledged_at": record.at, "acknowledged_by": record.actor}
        mark = Mark(kind="acknowledged", at=record.at, due=case.sla.acknowledge_by)
    elif isinstance(record, TaskAssigned):
        changes["assignee"] = record.assignee
    elif isinstance(record, StepDone):
        changes["steps"] = case.steps | {record.step: record.done}
    elif isinstance(record, TaskEscalated):
        changes["escalations"] = [
            *case.escalations,
            Escalation(reason=record.reason, level=record.level, at=record.at, round=case.reopened),
        ]
        mark = Mark(kind="escalated", at=record.at, detail=record.reason)
    elif isinstance(record, TaskResolved):
        changes |= {
            "status": "resolved",
            "resolution": Resolution(
                at=record.at,
                by=record.actor,
                root_cause=record.root_cause,
                resolution=record.resolution,
                customer_contacted=record.customer_contacted,
            ),
        }
        mark = Mark(kind="resolved", at=record.at, due=case.sla.resolve_by, detail=record.root_cause)
    elif isinstance(record, TaskReopened):
        changes |= {"status": "open", "reopened": case.reopened + 1, "acknowledged_at": None, "acknowledged_by": None, "outcome": None}
        if sla is not None:
            changes["sla"] = sla
        mark = Mark(kind="reopened", at=record.at, detail=record.reason, answer=record.answer.event_id if record.answer else None)
    elif isinstance(record, TaskClosed):
        changes |= {"status": "closed", "outcome": record.outcome}
        mark = Mark(kind="closed", at=record.at, detail=record.outcome, answer=record.answer.event_id if record.answer else None)
    if mark is not None:
        changes["marks"] = [*case.marks, mark]
    return case.model_copy(update=changes)


def remember(case: Case, action_id: str) -> Case:
    return case.model_copy(update={"applied": [*case.applied[-(APPLIED_KEPT - 1) :], action_id]})
