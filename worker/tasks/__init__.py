"""HEARD follow-up tasks: the case an unhappy answer opens, its owner, due time and steps.

What other subpackages use: the `followup:` block of a rule (FollowupSpec, Severity), and the
records published on FOLLOWUP_TOPIC (FollowUpTask, FollowUpUpdate, open_task).
"""

from .heard import DEFAULT_STEPS, STEPS, Step, TaskStep, heard_steps
from .records import FollowUpTask, FollowUpUpdate, open_task, task_id_for
from .spec import DEFAULT_OWNER, SEVERITY_RANK, FollowupSpec, Severity

__all__ = [
    "DEFAULT_OWNER",
    "DEFAULT_STEPS",
    "FollowUpTask",
    "FollowUpUpdate",
    "FollowupSpec",
    "SEVERITY_RANK",
    "STEPS",
    "Severity",
    "Step",
    "TaskStep",
    "heard_steps",
    "open_task",
    "task_id_for",
]
