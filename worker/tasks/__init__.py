"""HEARD follow-up tasks: the case an unhappy answer opens, and its lifecycle to a root cause.

heard.py      the five steps and their guidance
spec.py       a rule's `followup:` block (owner, due_in, acknowledge_within, escalate_to)
policy.py     owner pools, the root-cause taxonomy, the SLA calendar (config file)
records.py    followup.opened and followup.updated, the actor, the SLA
lifecycle.py  followup.acknowledged, .assigned, .step_done, .escalated, .resolved, .reopened
actions.py    what people and systems ask, on TASK_ACTIONS_TOPIC
case.py       a task as it stands: the fold of its records
keeper.py     the transition table: an action on a case → a record, or a refusal
recheck.py    the survey request a resolution sends, and which task the customer's next answer closes
table.py      every case, from the state topic
kpis.py       a case's marks as loop-KPI entries for the metric snapshots (metrics/loop.py)
schedule.py   `root_cause_digest:`: when the digest goes out, and its periods
diagnose.py   the root causes of the tasks resolved in a period, against the period before
learning.py   the suggested root cause: counts learned from resolved tasks, in the state topic
"""

from .actions import (
    ACTION,
    ACTION_NAMES,
    Acknowledge,
    Action,
    Answer,
    Assign,
    Close,
    Escalate,
    Open,
    PersonAction,
    Reopen,
    Resolve,
    StepAction,
    Update,
)
from .case import Case, Mark, Status, Timer, fold, opened
from .diagnose import (
    CauseLine,
    CauseReport,
    cases_from_records,
    change_text,
    money_text,
    plain_table,
    rate_text,
    resolved_in,
    root_cause_report,
    summary_line,
    terminal_safe,
)
from .heard import DEFAULT_STEPS, STEPS, Step, TaskStep, heard_steps
from .kpis import follow_cases, loop_entries
from .learning import CauseModel, comment_keywords, counted, features
from .lifecycle import (
    TASK_RECORD,
    EscalatedTo,
    Lifecycle,
    StepDone,
    TaskAcknowledged,
    TaskAssigned,
    TaskClosed,
    TaskEscalated,
    TaskRecord,
    TaskReopened,
    TaskResolved,
)
from .policy import DEFAULT_ROOT_CAUSES, OwnerPool, SlaCalendar, TaskPolicy, check_root_causes
from .recheck import TASK_ATTRIBUTE, SurveyRequest, answered_tasks, survey_request
from .records import (
    COMMENT_KEPT,
    WORKER,
    Actor,
    FollowupAnswer,
    FollowUpTask,
    FollowUpUpdate,
    Sla,
    SuggestedRootCause,
    open_task,
    task_id_for,
)
from .schedule import Period, RootCauseDigest
from .spec import DEFAULT_OWNER, SEVERITY_RANK, EscalateTo, FollowupSpec, Recheck, Severity
from .table import ActionOutcome, Cases
from .transitions import STILL_UNHAPPY, Applied, Refused, apply, refusal

__all__ = [
    "ACTION",
    "ACTION_NAMES",
    "COMMENT_KEPT",
    "DEFAULT_OWNER",
    "DEFAULT_ROOT_CAUSES",
    "DEFAULT_STEPS",
    "SEVERITY_RANK",
    "STEPS",
    "STILL_UNHAPPY",
    "TASK_ATTRIBUTE",
    "TASK_RECORD",
    "WORKER",
    "answered_tasks",
    "apply",
    "cases_from_records",
    "change_text",
    "check_root_causes",
    "comment_keywords",
    "counted",
    "features",
    "fold",
    "follow_cases",
    "heard_steps",
    "loop_entries",
    "money_text",
    "open_task",
    "opened",
    "plain_table",
    "rate_text",
    "refusal",
    "resolved_in",
    "root_cause_report",
    "summary_line",
    "survey_request",
    "task_id_for",
    "terminal_safe",
    "Acknowledge",
    "Action",
    "ActionOutcome",
    "Actor",
    "Answer",
    "Applied",
    "Assign",
    "Case",
    "CauseLine",
    "CauseModel",
    "CauseReport",
    "Cases",
    "Close",
    "Escalate",
    "EscalateTo",
    "EscalatedTo",
    "FollowUpTask",
    "SuggestedRootCause",
    "FollowUpUpdate",
    "FollowupAnswer",
    "FollowupSpec",
    "Lifecycle",
    "Mark",
    "Open",
    "OwnerPool",
    "Period",
    "PersonAction",
    "Recheck",
    "Refused",
    "Reopen",
    "Resolve",
    "RootCauseDigest",
    "Severity",
    "Sla",
    "SlaCalendar",
    "Status",
    "Step",
    "StepAction",
    "StepDone",
    "SurveyRequest",
    "TaskAcknowledged",
    "TaskAssigned",
    "TaskClosed",
    "TaskEscalated",
    "TaskPolicy",
    "TaskRecord",
    "TaskReopened",
    "TaskResolved",
    "TaskStep",
    "Timer",
    "Update",
]
