"""The records of a HEARD follow-up task on FOLLOWUP_TOPIC (key: the task id): its audit log.

A task is the fold of its records, in order (case.py). `followup.opened` is the task as a rule
opened it for an unhappy answer; `followup.updated` adds a later answer to it (a throttled
repeat); the lifecycle records (lifecycle.py) say who acknowledged, assigned, ticked a step,
escalated, resolved or reopened it. Every record has `type`, `task_id`, `at` (UTC) and `actor`.
Task ids follow from the event id, so a redelivered event names the same task.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ..events import Customer, FeedbackEvent, Survey, is_unhappy
from .heard import TaskStep, heard_steps
from .spec import EscalateTo, FollowupSpec, Severity

#: Comments kept in a case and in answers: enough to quote, bounded so the state topic stays small.
COMMENT_KEPT = 500


class Actor(BaseModel):
    """Who did it: a person in Slack, someone at the command line, another system (api), or the worker itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["slack", "cli", "api", "worker"]
    id: str = Field("", max_length=200, description="Slack user id, login name, system name.")
    name: str | None = Field(None, max_length=200, description="Shown in the audit log and in Slack.")

    def shown(self) -> str:
        return self.name or self.id or self.source


#: The worker's own actions: opening tasks, adding answers, escalating.
WORKER = Actor(source="worker", id="feedback-worker", name="feedback-worker")


class Sla(BaseModel):
    """When the task must be acknowledged (if the rule says so) and resolved (business time with a calendar)."""

    acknowledge_by: AwareDatetime | None = None
    resolve_by: AwareDatetime


class SuggestedRootCause(BaseModel):
    """What resolved tasks with words like this comment's were put down to (naive Bayes over stems: themes/suggest.py)."""

    root_cause: str
    confidence: float = Field(ge=0, le=1, description="The model's probability of this cause, 0-1.")
    terms: list[str] = Field(description="The comment's words that weighed most towards it, as the customer wrote them.")


class FollowUpTask(BaseModel):
    """A `followup.opened` record on `FOLLOWUP_TOPIC`; the Kafka key is `task_id`."""

    type: Literal["followup.opened"] = "followup.opened"
    task_id: str = Field(description="Deterministic per event: a redelivered event yields the same id.")
    at: AwareDatetime | None = Field(None, description="When it was opened (= opened_at).")
    actor: Actor = WORKER
    event_id: str
    rule_id: str = Field(description="The rule that owns the task (highest severity among those that matched).")
    matched_rules: list[str] = Field(description="Every rule that matched the event, in file order.")
    severity: Severity
    owner: str = Field(description="The team, person or owner pool the task is for.")
    assignee: str | None = Field(None, description="The pool member it was given to (config `owners:`); null for other owners.")
    opened_at: AwareDatetime
    due_at: AwareDatetime = Field(description="When it must be resolved: opened_at + the owning rule's due_in (= sla.resolve_by).")
    sla: Sla | None = None
    escalate_to: EscalateTo | None = Field(None, description="Besides the assignee, who hears of an escalation.")
    customer: Customer
    survey: Survey
    score: int
    comment: str | None
    language: str | None = Field(None, description="The comment's language (ISO 639-1): the event's, or the one the worker decided.")
    themes: list[str] = Field(
        default_factory=list, description="Ids of the themes the comment mentions (docs/themes.md), ancestors included, sorted."
    )
    suggested_root_cause: SuggestedRootCause | None = Field(
        None,
        description="The root cause the team's resolved tasks point to for this comment's words; null until enough tasks "
        "were resolved with a root cause (docs/themes.md).",
    )
    steps: list[TaskStep] = Field(description="The five HEARD steps, in order.")
    status: Literal["open"] = "open"


class FollowUpUpdate(BaseModel):
    """A `followup.updated` record on FOLLOWUP_TOPIC (key: the task id): one more answer for an open task."""

    type: Literal["followup.updated"] = "followup.updated"
    task_id: str
    at: AwareDatetime | None = Field(None, description="When the answer joined the task (= updated_at).")
    actor: Actor = WORKER
    event_id: str = Field(description="The new answer.")
    rule_id: str
    matched_rules: list[str]
    updated_at: AwareDatetime
    answers_in_episode: int = Field(description="Answers in this task's throttle window so far, the first included.")
    customer: Customer
    survey: Survey
    score: int
    comment: str | None


class FollowupAnswer(BaseModel):
    """The customer's next answer after a resolution: it closes the task (recovered) or reopens it (still unhappy)."""

    model_config = ConfigDict(frozen=True)

    event_id: str
    occurred_at: AwareDatetime
    survey: Survey
    score: int
    unhappy: bool = Field(description="By the README's definition: NPS 0-6, CSAT 1-3, CES 4-5.")
    comment: str | None = Field(None, max_length=COMMENT_KEPT, description="The first 500 characters of the comment.")

    @classmethod
    def of(cls, event: FeedbackEvent) -> FollowupAnswer:
        return cls(
            event_id=event.event_id,
            occurred_at=event.occurred_at,
            survey=event.survey,
            score=event.score,
            unhappy=is_unhappy(event.survey, event.score),
            comment=event.comment[:COMMENT_KEPT] if event.comment else None,
        )


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
    sla: Sla | None = None,
    themes: Iterable[str] = (),
    language: str | None = None,
) -> FollowUpTask:
    """`owner`: the routed owner (see rules/routing.py); the rule's own when not given.

    `themes`, `language`: the comment's, as the rule set tagged it (rules.RuleSet.tag).

    `sla`: the task's timers (calendar.py); by default wall-clock time from `now`."""
    sla = sla or Sla(acknowledge_by=now + spec.acknowledge_within if spec.acknowledge_within else None, resolve_by=now + spec.due_in)
    return FollowUpTask(
        task_id=task_id_for(event.event_id),
        at=now,
        event_id=event.event_id,
        rule_id=rule_id,
        matched_rules=matched_rules,
        severity=severity,
        owner=owner or spec.owner,
        opened_at=now,
        due_at=sla.resolve_by,
        sla=sla,
        escalate_to=spec.escalate_to,
        customer=event.customer,
        survey=event.survey,
        score=event.score,
        comment=event.comment,
        language=language or event.language,
        themes=sorted(themes),
        steps=heard_steps(spec.guidance),
    )
