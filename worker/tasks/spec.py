"""A rule's `followup:` block: who owns the task it opens, and how soon it is due.

Rules (rules/) embed this block; the task records (records.py) are built from it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..durations import Duration
from ..names import check_name_template
from .heard import Step

Severity = Literal["critical", "high", "medium", "low", "info"]
#: Higher wins when several rules match one event.
SEVERITY_RANK: dict[str, int] = {"critical": 5, "high": 4, "medium": 3, "low": 2, "info": 1}
#: The owner of a task when neither the rule nor a route names one.
DEFAULT_OWNER = "cx-team"


class FollowupSpec(BaseModel):
    """A rule's `followup:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    owner: str = Field(
        DEFAULT_OWNER, min_length=1, description="Team or person who owns the task; may be a template; else routes, cx-team."
    )
    due_in: Duration = Field(timedelta(hours=24), description="Time to resolve, e.g. 4h or 2d.")
    guidance: dict[Step, str] = Field(default_factory=dict, description="Override the guidance text of any HEARD step.")

    _owner_template = field_validator("owner")(lambda cls, value: check_name_template(value))
