"""A rule's `followup:` block: who owns the task it opens, and how soon it is due.

Rules (rules/) embed this block; the task records (records.py) are built from it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..notation import Duration, check_name_template
from .heard import Step

Severity = Literal["critical", "high", "medium", "low", "info"]
#: The follow-up survey a resolved task asks the customer (recheck), or none.
Recheck = Literal["csat", "nps", "ces", "none"]
#: Higher wins when several rules match one event.
SEVERITY_RANK: dict[str, int] = {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1}
#: The owner of a task when neither the rule nor a route names one.
DEFAULT_OWNER = "cx-team"


class EscalateTo(BaseModel):
    """Who hears about a task whose SLA timer ran out, besides its assignee (mentioned in the alert's thread)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str | None = Field(None, description="Mentioned in the escalation: a Slack user (U...) or user group (S...), or a team name.")
    channel: str | None = Field(None, description="Where the escalation is posted, e.g. #cx-leads.")

    @model_validator(mode="after")
    def _something(self) -> EscalateTo:
        if self.owner is None and self.channel is None:
            raise ValueError("give an owner, a channel or both")
        return self


class FollowupSpec(BaseModel):
    """A rule's `followup:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(
        DEFAULT_OWNER,
        min_length=1,
        description="Team, person or owner pool (config `owners:`) the task goes to; may be a template; else routes, cx-team.",
    )
    due_in: Duration = Field(timedelta(hours=24), description="Time to resolve, e.g. 4h or 2d (business time with a calendar).")
    acknowledge_within: Duration | None = Field(None, description="Time to acknowledge before escalating; none by default.")
    escalate_to: EscalateTo | None = Field(None, description="Who else hears of an escalation, and where.")
    guidance: dict[Step, str] = Field(default_factory=dict, description="Override the guidance text of any HEARD step.")
    recheck: Recheck = Field(
        "csat",
        description="The survey sent to the customer when the task is resolved (survey.requested); none: no follow-up survey.",
    )
    recovery_window: Duration = Field(
        timedelta(days=14),
        description="How long after the resolution the customer's answer can close the task; then no_response.",
    )

    _owner_template = field_validator("owner")(lambda cls, value: check_name_template(value))
