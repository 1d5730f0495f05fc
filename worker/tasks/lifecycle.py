"""The lifecycle records of a task on FOLLOWUP_TOPIC: acknowledged, assigned, steps, escalated, resolved, reopened, closed.

Each is a pydantic model, so the record is its own schema (`feedback-worker schema lifecycle`).
Every record has `type`, `task_id`, `at` (UTC), `actor`, and an `id` that is the same when a
crash makes the worker publish it again, so consumers can deduplicate.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter

from .heard import Step
from .records import Actor, FollowupAnswer, FollowUpTask, FollowUpUpdate

EscalationReason = Literal["not_acknowledged", "overdue"]


class _Record(BaseModel):
    task_id: str
    at: datetime
    actor: Actor
    id: str = Field(description="Deterministic: the same record published again after a crash has the same id.")


class TaskAcknowledged(_Record):
    """Someone has taken the task."""

    type: Literal["followup.acknowledged"] = "followup.acknowledged"


class TaskAssigned(_Record):
    type: Literal["followup.assigned"] = "followup.assigned"
    assignee: str = Field(description="A Slack user id (or any owner name).")
    previous: str | None


class StepDone(_Record):
    """A HEARD step ticked (done: true) or unticked (done: false)."""

    type: Literal["followup.step_done"] = "followup.step_done"
    step: Step
    done: bool
    note: str | None = None


class EscalatedTo(BaseModel):
    owner: str | None = None
    channel: str | None = None


class TaskEscalated(_Record):
    """An SLA timer ran out: not acknowledged within `acknowledge_within`, or not resolved by `due_at`."""

    type: Literal["followup.escalated"] = "followup.escalated"
    reason: EscalationReason
    level: int = Field(1, ge=1)
    escalated_to: EscalatedTo


class TaskResolved(_Record):
    type: Literal["followup.resolved"] = "followup.resolved"
    root_cause: str = Field(description="One of the configured root causes (config `root_causes:`).")
    resolution: str = Field(description="What was done.")
    customer_contacted: bool


class TaskReopened(_Record):
    """Opened again: by a person (a reason in words), or by the customer's next answer (`still_unhappy`, with the answer).

    The SLA timers restart."""

    type: Literal["followup.reopened"] = "followup.reopened"
    reason: str = Field(description="Why; `still_unhappy` when the customer's follow-up answer was unhappy.")
    answer: FollowupAnswer | None = Field(None, description="The answer that reopened it (reason still_unhappy).")


class TaskClosed(_Record):
    """The loop is closed: the customer answered again and is no longer unhappy, or did not answer within the window."""

    type: Literal["followup.closed"] = "followup.closed"
    outcome: Literal["recovered", "no_response"]
    answer: FollowupAnswer | None = Field(None, description="The answer that closed it (outcome recovered).")


Lifecycle = TaskAcknowledged | TaskAssigned | StepDone | TaskEscalated | TaskResolved | TaskReopened | TaskClosed
#: Any record of FOLLOWUP_TOPIC, read back by type (the CLI's `task show`).
TaskRecord = Annotated[FollowUpTask | FollowUpUpdate | Lifecycle, Field(discriminator="type")]
TASK_RECORD: TypeAdapter[TaskRecord] = TypeAdapter(TaskRecord)


def record_id(task_id: str, action_id: str) -> str:
    return hashlib.blake2b(f"{task_id}|{action_id}".encode(), digest_size=8).hexdigest()
