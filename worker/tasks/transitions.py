"""Applying an action to a task: the transition table, in one function.

| action      | allowed when the task is | record                  |
|-------------|--------------------------|-------------------------|
| open        | (new)                    | followup.opened         |
| update      | not resolved             | followup.updated        |
| acknowledge | open                     | followup.acknowledged   |
| assign      | not resolved             | followup.assigned       |
| step        | not resolved             | followup.step_done      |
| escalate    | not resolved             | followup.escalated      |
| resolve     | open or acknowledged     | followup.resolved       |
| reopen      | resolved or closed       | followup.reopened       |
| answer      | resolved, the answer in its recovery window: followup.closed (recovered) or, |
|             | when still unhappy, followup.reopened (also from closed as recovered)       |
| close       | resolved, recovery window over | followup.closed (no_response)     |

A refusal names the task, its status and why. An action id already applied is a duplicate:
nothing happens, and it is not an error (a retried CLI call, a redelivered record).
Nothing here touches Kafka or Slack: the loop (worker/keeper/keeper.py) publishes what this returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypedDict

from .actions import Acknowledge, Action, Answer, Assign, Close, Escalate, Open, Reopen, Resolve, StepAction, Update
from .case import Case, fold, opened, remember
from .learning import features
from .lifecycle import (
    EscalatedTo,
    Lifecycle,
    StepDone,
    TaskAcknowledged,
    TaskAssigned,
    TaskClosed,
    TaskEscalated,
    TaskReopened,
    TaskResolved,
    record_id,
)
from .policy import TaskPolicy
from .records import Actor, FollowUpTask, FollowUpUpdate, Sla


@dataclass(frozen=True)
class Applied:
    case: Case
    record: FollowUpTask | FollowUpUpdate | Lifecycle  # for FOLLOWUP_TOPIC
    extra: dict[str, object] = field(default_factory=dict)  # e.g. which pool member a task went to


@dataclass(frozen=True)
class Refused:
    reason: str


class _Common(TypedDict):
    """The fields every lifecycle record has (lifecycle._Record), given to each record's constructor."""

    task_id: str
    at: datetime
    actor: Actor
    id: str


#: Picks the member of an owner pool for a new task (table.py keeps the rotation); None: the owner is no pool.
Assigner = Callable[[str], str | None]
#: The reason of a reopen by the customer's follow-up answer.
STILL_UNHAPPY = "still_unhappy"


def apply(
    case: Case | None, action: Action, action_id: str, now: datetime, policy: TaskPolicy, assign: Assigner
) -> Applied | Refused | None:
    """The outcome of `action` on `case` (None: an unknown task). None: a duplicate, nothing to do."""
    if isinstance(action, Open):
        if case is not None:
            return None  # a replayed event opens the same task again: it exists
        task = action.task
        if task.assignee is None and (member := assign(task.owner)) is not None:
            task = task.model_copy(update={"assignee": member})
        new = opened(
            task,
            timedelta(seconds=action.acknowledge_within_s) if action.acknowledge_within_s else None,
            timedelta(seconds=action.due_in_s),
            action.channel,
            action.recheck,
            timedelta(seconds=action.recovery_window_s),
            action.dims,
            features(action.stems, task.themes),  # what it teaches once resolved (learning.py)
        )
        return Applied(remember(new, action_id), task)
    if case is None:
        return Refused(f"unknown task {action.task_id!r} (see `feedback-worker task list`)")
    if action_id in case.applied:
        return None
    reason = refusal(case, action, policy, now)
    if reason is not None:
        return Refused(reason)
    common: _Common = {"task_id": case.task_id, "at": now, "actor": action.actor, "id": record_id(case.task_id, action_id)}
    record: FollowUpUpdate | Lifecycle
    sla = None
    if isinstance(action, Update):
        record = action.update
    elif isinstance(action, Acknowledge):
        record = TaskAcknowledged(**common)
    elif isinstance(action, Assign):
        record = TaskAssigned(**common, assignee=action.assignee, previous=case.assignee)
    elif isinstance(action, StepAction):
        record = StepDone(**common, step=action.step, done=action.done, note=action.note)
    elif isinstance(action, Escalate):
        to = case.escalate_to
        record = TaskEscalated(
            **common,
            reason=action.reason,
            level=action.level,
            escalated_to=EscalatedTo(owner=to.owner if to else None, channel=to.channel if to else None),
        )
    elif isinstance(action, Resolve):
        assert action.root_cause is not None and action.resolution is not None
        record = TaskResolved(
            **common, root_cause=action.root_cause, resolution=action.resolution.strip(), customer_contacted=action.customer_contacted
        )
    elif isinstance(action, Close):
        record = TaskClosed(**common, outcome="no_response")
    elif isinstance(action, Answer) and not action.answer.unhappy:
        record = TaskClosed(**common, outcome="recovered", answer=action.answer)
    else:
        assert isinstance(action, (Reopen, Answer))
        if isinstance(action, Answer):
            record = TaskReopened(**common, reason=STILL_UNHAPPY, answer=action.answer)
        else:
            record = TaskReopened(**common, reason=action.reason)
        acknowledge_by, resolve_by = policy.sla(
            now, timedelta(seconds=case.acknowledge_within_s) if case.acknowledge_within_s else None, timedelta(seconds=case.due_in_s)
        )
        sla = Sla(acknowledge_by=acknowledge_by, resolve_by=resolve_by)  # the timers restart
    return Applied(remember(fold(case, record, sla), action_id), record)


def refusal(case: Case, action: Action, policy: TaskPolicy, now: datetime | None = None) -> str | None:
    """Why this action may not be applied to this case now (default: the present); None: it may."""
    task, status = case.task_id, case.status
    if isinstance(action, Acknowledge) and status != "open":
        by = f" by {case.acknowledged_by.shown()}" if status == "acknowledged" and case.acknowledged_by else ""
        return f"cannot acknowledge task {task}: it is {status}{by}; only an open task can be acknowledged"
    if isinstance(action, (Update, Assign, StepAction, Escalate)) and not case.unresolved:
        what = {"update": "add an answer to", "assign": "assign", "step": "tick a step of", "escalate": "escalate"}[action.action]
        return f"cannot {what} task {task}: it is {status} (reopen it first)"
    if isinstance(action, Assign) and action.assignee == case.assignee:
        return f"task {task} is already assigned to {action.assignee}"
    if isinstance(action, StepAction) and case.steps.get(action.step, False) == action.done:
        return f"step {action.step} of task {task} is already {'done' if action.done else 'not done'}"
    if isinstance(action, Escalate) and case.escalated(action.reason):
        return f"task {task} is already escalated ({action.reason})"
    if isinstance(action, Escalate) and action.reason == "not_acknowledged" and status != "open":
        # The keeper asked when the timer ran out; an acknowledgement sent in time was already on its way (ahead of
        # the escalation in the actions topic): it won the race.
        return f"task {task} was acknowledged before its escalation was applied"
    if isinstance(action, Resolve):
        if not case.unresolved and case.resolution is not None:
            return f"cannot resolve task {task}: it is already {status} ({case.resolution.root_cause}, by {case.resolution.by.shown()})"
        known = ", ".join(policy.root_causes)
        if not action.root_cause:
            return f"cannot resolve task {task} ({status}): a root cause is required (one of: {known})"
        if action.root_cause not in policy.root_causes:
            return f"cannot resolve task {task} ({status}): root cause {action.root_cause!r} is not in the taxonomy (one of: {known})"
        if not (action.resolution or "").strip():
            return f"cannot resolve task {task} ({status}): say what was done (resolution)"
    if isinstance(action, Reopen) and case.unresolved:
        return f"cannot reopen task {task}: it is {status}; only a resolved or closed task can be reopened"
    if isinstance(action, Answer):
        return _answer_refusal(case, action)
    if isinstance(action, Close):
        window = case.answer_window()
        if not case.awaiting_answer or window is None:
            return f"task {task} is {status}: it awaits no answer"
        if (now or datetime.now(UTC)) < window[1]:
            return f"task {task} awaits an answer until {window[1].isoformat()}"
    return None


def _answer_refusal(case: Case, action: Answer) -> str | None:
    answer, task = action.answer, case.task_id
    window = case.answer_window()
    if window is None:
        return f"answer {answer.event_id} does not close task {task}: it is {case.status} and awaits no answer"
    if not window[0] < answer.occurred_at <= window[1]:
        return (
            f"answer {answer.event_id} ({answer.occurred_at.isoformat()}) is outside the recovery window of task {task} "
            f"({window[0].isoformat()} to {window[1].isoformat()})"
        )
    if case.status == "closed" and not (answer.unhappy and case.outcome == "recovered"):
        return f"task {task} is already closed ({case.outcome})"
    return None
