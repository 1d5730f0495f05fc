"""HEARD follow-up tasks: the case an unhappy answer opens, and its lifecycle to a root cause.

    heard.py      the five steps and their guidance
    spec.py       a rule's `followup:` block (owner, due_in, acknowledge_within, escalate_to)
    policy.py     owner pools, the root-cause taxonomy, the SLA calendar (config file)
    records.py    followup.opened and followup.updated, the actor, the SLA
    lifecycle.py  followup.acknowledged, .assigned, .step_done, .escalated, .resolved, .reopened
    actions.py    what people and systems ask, on TASK_ACTIONS_TOPIC
    case.py       a task as it stands: the fold of its records
    keeper.py     the transition table: an action on a case → a record, or a refusal
    table.py      every case, from the state topic
"""

from .actions import ACTION, ACTION_NAMES, Acknowledge, Action, Assign, Escalate, Open, PersonAction, Reopen, Resolve, StepAction, Update
from .case import Case, Status, fold, opened
from .heard import DEFAULT_STEPS, STEPS, Step, TaskStep, heard_steps
from .keeper import Applied, Refused, apply, refusal
from .lifecycle import (
    TASK_RECORD,
    EscalatedTo,
    Lifecycle,
    StepDone,
    TaskAcknowledged,
    TaskAssigned,
    TaskEscalated,
    TaskRecord,
    TaskReopened,
    TaskResolved,
)
from .policy import DEFAULT_ROOT_CAUSES, OwnerPool, SlaCalendar, TaskPolicy, check_root_causes
from .records import WORKER, Actor, FollowUpTask, FollowUpUpdate, Sla, open_task, task_id_for
from .spec import DEFAULT_OWNER, SEVERITY_RANK, EscalateTo, FollowupSpec, Severity
from .table import ActionOutcome, Cases

__all__ = [
    "ACTION",
    "ACTION_NAMES",
    "Acknowledge",
    "Action",
    "ActionOutcome",
    "Actor",
    "Applied",
    "Assign",
    "Case",
    "Cases",
    "DEFAULT_OWNER",
    "DEFAULT_ROOT_CAUSES",
    "DEFAULT_STEPS",
    "Escalate",
    "EscalateTo",
    "EscalatedTo",
    "FollowUpTask",
    "FollowUpUpdate",
    "FollowupSpec",
    "Lifecycle",
    "Open",
    "OwnerPool",
    "PersonAction",
    "Refused",
    "Reopen",
    "Resolve",
    "SEVERITY_RANK",
    "STEPS",
    "Severity",
    "Sla",
    "SlaCalendar",
    "Status",
    "Step",
    "StepAction",
    "StepDone",
    "TASK_RECORD",
    "TaskAcknowledged",
    "TaskAssigned",
    "TaskEscalated",
    "TaskPolicy",
    "TaskRecord",
    "TaskReopened",
    "TaskResolved",
    "TaskStep",
    "Update",
    "WORKER",
    "apply",
    "check_root_causes",
    "fold",
    "heard_steps",
    "open_task",
    "opened",
    "refusal",
    "task_id_for",
]
