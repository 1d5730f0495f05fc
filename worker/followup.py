"""HEARD follow-up tasks: the record that closes the loop with an unhappy customer.

HEARD (Hear, Empathize, Apologize, Resolve, Diagnose) is the service-recovery method
Disney made famous. Each task carries the five steps in order, with guidance an agent can
follow; a rule may override the guidance of any step.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .durations import Duration
from .events import Customer, FeedbackEvent, Survey

Step = Literal["hear", "empathize", "apologize", "resolve", "diagnose"]
STEPS: tuple[Step, ...] = ("hear", "empathize", "apologize", "resolve", "diagnose")

DEFAULT_STEPS: dict[Step, tuple[str, str]] = {
    "hear": (
        "Hear",
        "Read the whole response and the customer's recent history, then contact them. "
        "Let them tell the full story without interrupting or defending.",
    ),
    "empathize": (
        "Empathize",
        "Acknowledge how the experience made them feel, in your own words. "
        "Show you understand why it matters to them.",
    ),
    "apologize": (
        "Apologize",
        "Apologize sincerely for the experience, without blame or excuses, "
        "even where the cause was outside your team.",
    ),
    "resolve": (
        "Resolve",
        "Agree a concrete fix with the customer, act on it quickly, "
        "and confirm with them that it is resolved.",
    ),
    "diagnose": (
        "Diagnose",
        "Find the root cause without blame and record it, so the process can be fixed "
        "and the same problem does not reach another customer.",
    ),
}

Severity = Literal["critical", "high", "medium", "low", "info"]
#: Higher wins when several rules match one event.
SEVERITY_RANK: dict[str, int] = {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1}


def check_name_template(value: str | None) -> str | None:
    """A channel or owner that is a template (`#cx-{{ customer.segment }}`) must at least parse."""
    if value is not None and "{{" in value:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        try:
            SandboxedEnvironment().parse(value)
        except TemplateSyntaxError as err:
            raise ValueError(f"invalid template {value!r}: {err.message}") from None
    return value


class FollowupSpec(BaseModel):
    """A rule's `followup:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(
        "cx-team", min_length=1, description="Team or person who owns the task; may be a template; else routes, cx-team."
    )
    due_in: Duration = Field(timedelta(hours=24), description="Time to resolve, e.g. 4h or 2d.")
    guidance: dict[Step, str] = Field(default_factory=dict, description="Override the guidance text of any HEARD step.")

    _owner_template = field_validator("owner")(lambda cls, value: check_name_template(value))


class TaskStep(BaseModel):
    step: Step
    title: str
    guidance: str


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


def task_id_for(event_id: str) -> str:
    """One event opens at most one task, so the id follows from the event id.

    Redelivery after a crash republishes the same id, which lets consumers deduplicate.
    """
    return "task-" + hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).hexdigest()


def heard_steps(spec: FollowupSpec) -> list[TaskStep]:
    return [
        TaskStep(step=step, title=DEFAULT_STEPS[step][0], guidance=spec.guidance.get(step, DEFAULT_STEPS[step][1]))
        for step in STEPS
    ]


def open_task(
    event: FeedbackEvent,
    rule_id: str,
    matched_rules: list[str],
    severity: Severity,
    spec: FollowupSpec,
    now: datetime,
    owner: str | None = None,
) -> FollowUpTask:
    """`owner`: the routed owner (see routing.py); the rule's own when not given."""
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
        steps=heard_steps(spec),
    )
