"""The optional blocks of a rule besides `when:` and `followup:`: alert, throttle, group.

The models are the schema of a rules file and its documentation: `rules check` reports any
mistake in them with the file and line (see loader.py). What each block does at run time is
in alerting/ (render, throttle, digest).
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..events import is_known_path
from ..notation import Duration, check_name_template

DEFAULT_TEMPLATE = "alert.slack.j2"


class AlertSpec(BaseModel):
    """A rule's `alert:` block. Both keys are optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str | None = Field(
        None, description='Slack channel, may be a template ("#cx-{{ customer.segment }}"); else routes, SLACK_DEFAULT_CHANNEL.'
    )
    template: str = Field(DEFAULT_TEMPLATE, description="Jinja2 template file in TEMPLATES_PATH.")

    _channel_template = field_validator("channel")(lambda cls, value: check_name_template(value))


class ThrottleSpec(BaseModel):
    """A rule's `throttle:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Field path whose value identifies the episode, e.g. customer.id.")
    window: Duration = Field(description="How long after the first match further matches join its thread.")

    @field_validator("key")
    @classmethod
    def _known(cls, key: str) -> str:
        if not is_known_path(key):
            raise ValueError(f"unknown field path {key!r} (e.g. customer.id, customer.segment, attributes.account)")
        return key


class GroupSpec(BaseModel):
    """A rule's `group:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: list[str] = Field(default_factory=list, description="Field paths; one digest per combination of values.")
    wait: Duration = Field(timedelta(seconds=30), description="How long the first match waits for others.")
    interval: Duration = Field(timedelta(minutes=5), description="At most one digest per group this often.")
    max_items: int = Field(20, ge=1, le=100, description="Matches listed in full; the rest are counted.")

    @field_validator("by")
    @classmethod
    def _known(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not is_known_path(path):
                raise ValueError(f"unknown field path {path!r}")
        return paths
