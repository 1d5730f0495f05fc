"""Actions on tasks: what a person (Slack, the CLI) or another system asks, on TASK_ACTIONS_TOPIC.

    {"action": "acknowledge", "task_id": "task-1a2b", "actor": {"source": "api", "id": "zendesk"}}
    {"action": "resolve", "task_id": "...", "actor": {...}, "root_cause": "shipping-delay",
     "resolution": "Re-sent the order", "customer_contacted": true}

The topic is the single way into a task's lifecycle: the worker itself also asks through it
(`open`, `update`, `escalate`, `answer`, `close`, as the `worker` actor), and one worker applies them in order
(keeper.py), so two clicks at once are applied one after the other, never both. An action
that is malformed or not allowed is dead-lettered with the reason (`action.rejected`).
`action_id` makes a retry harmless: an id already applied is applied once.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from .heard import Step
from .lifecycle import EscalationReason
from .records import Actor, FollowupAnswer, FollowUpTask, FollowUpUpdate
from .spec import Recheck


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is a mistake to report, not to ignore

    task_id: str = Field(min_length=1, max_length=100)
    actor: Actor
    action_id: str | None = Field(None, max_length=200, description="Makes a retry harmless; default: the record's offset.")


class Acknowledge(_Action):
    action: Literal["acknowledge"]


class Assign(_Action):
    action: Literal["assign"]
    assignee: str = Field(min_length=1, max_length=100)


class StepAction(_Action):
    action: Literal["step"]
    step: Step
    done: bool = True
    note: str | None = Field(None, max_length=2000)


class Resolve(_Action):
    """Root cause and resolution are checked by the keeper, so the refusal can name the task and its status."""

    action: Literal["resolve"]
    root_cause: str | None = Field(None, max_length=100)
    resolution: str | None = Field(None, max_length=3000)
    customer_contacted: bool = False


class Reopen(_Action):
    action: Literal["reopen"]
    reason: str = Field(min_length=1, max_length=2000)


class _WorkerAction(_Action):
    """Asked by the worker itself; refused from anyone else."""

    @model_validator(mode="after")
    def _from_the_worker(self) -> _WorkerAction:
        if self.actor.source != "worker":
            raise ValueError(f"only the worker may {getattr(self, 'action', 'do this')}")
        return self


#: Timers beyond ten years are a mistake, not a policy (and past what datetime arithmetic can hold).
MAX_TIMER_S = 10 * 365 * 86400
#: A comment's keywords an Open carries (the first ones), and how long a stem or word may be.
MAX_KEYWORDS = 100
MAX_STEM = 30
MAX_WORD = 100


class Open(_WorkerAction):
    action: Literal["open"]
    task: FollowUpTask
    acknowledge_within_s: int | None = Field(None, ge=0, le=MAX_TIMER_S)  # the rule's timers, to restart them on a reopen
    due_in_s: int = Field(ge=0, le=MAX_TIMER_S)
    channel: str | None = None  # where its alert went: escalations reply there when the alert is not known
    recheck: Recheck = "csat"  # the rule's follow-up survey, asked for when the task is resolved
    recovery_window_s: int = Field(14 * 86400, ge=0, le=MAX_TIMER_S)
    dims: list[str] = Field(default_factory=list)  # the event's metric dimensions (`customer.segment=smb`): loop KPIs per dimension
    stems: list[Annotated[str, Field(min_length=1, max_length=MAX_STEM)]] = Field(
        default_factory=list,
        max_length=MAX_KEYWORDS,
        description="The comment's stems, stop words left out: what the suggested root cause is worked out from, and "
        "learned from once the task is resolved (tasks/learning.py).",
    )
    words: list[Annotated[str, Field(max_length=MAX_WORD)]] = Field(
        default_factory=list, max_length=MAX_KEYWORDS, description="Those words as written (casefolded), one per stem."
    )

    @model_validator(mode="after")
    def _a_word_per_stem(self) -> Open:
        if len(self.words) != len(self.stems):
            raise ValueError(f"{len(self.stems)} stems but {len(self.words)} words: one word per stem")
        return self


class Update(_WorkerAction):
    action: Literal["update"]
    update: FollowUpUpdate


class Answer(_WorkerAction):
    """The customer answered again: closes a resolved task (recovered) or reopens it (still unhappy)."""

    action: Literal["answer"]
    answer: FollowupAnswer


class Close(_WorkerAction):
    """The recovery window of a resolved task ran out without an answer."""

    action: Literal["close"]


class Escalate(_WorkerAction):
    action: Literal["escalate"]
    reason: EscalationReason
    level: int = Field(1, ge=1, le=100)


PersonAction = Acknowledge | Assign | StepAction | Resolve | Reopen
Action = Annotated[PersonAction | Open | Update | Escalate | Answer | Close, Field(discriminator="action")]
ACTION: TypeAdapter[Action] = TypeAdapter(Action)
#: The actions people and other systems may send (the rest are the worker's own).
ACTION_NAMES = ("acknowledge", "assign", "step", "resolve", "reopen")
