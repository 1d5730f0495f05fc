"""The feedback event: one survey answer, as it arrives on `FEEDBACK_TOPIC`.

The pydantic models here are the schema and its documentation; `feedback-worker schema`
prints them as JSON Schema for producers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, field_validator

Survey = Literal["nps", "csat", "ces"]

#: Answers dated further ahead than this (seconds) are refused to the DLQ: a wrong clock would skew every metric window.
FUTURE_LIMIT_S = 300

#: Inclusive score range of each survey type.
SCORE_RANGES: dict[str, tuple[int, int]] = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 5)}


class Customer(BaseModel):
    """Who answered. Only `id` is required; `monthly_value` feeds revenue at risk."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: Annotated[str, Field(min_length=1, description="Stable customer id from your CRM.")]
    name: str | None = None
    email: str | None = None
    segment: str | None = Field(None, description="e.g. smb, mid-market, enterprise.")
    # Finite: `1e400` parses as infinity, which would make revenue at risk infinite and serialise as null.
    monthly_value: Annotated[float, Field(ge=0, allow_inf_nan=False, description="Monthly revenue from this customer.")] | None = None


class FeedbackEvent(BaseModel):
    """One survey response. JSON, UTF-8, one per Kafka message.

    Unknown fields are ignored, so producers can add fields before the worker knows them.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: Annotated[str, Field(min_length=1, description="Unique id of this response; tasks are derived from it.")]
    occurred_at: AwareDatetime = Field(description="When the customer answered: RFC 3339 with a UTC offset.")
    survey: Survey = Field(description="nps (score 0-10), csat (1-5) or ces (1-5).")
    score: StrictInt = Field(description="Integer score within the survey's range.")
    comment: str | None = Field(None, description="Free text from the customer. Untrusted.")
    customer: Customer
    channel: str | None = Field(None, description="Where the survey was answered: email, in-app, sms...")
    touchpoint: str | None = Field(None, description="What the answer is about: support, delivery, billing...")
    attributes: dict[str, Any] = Field(default_factory=dict, description="Free-form extra fields for rules.")

    @field_validator("score")
    @classmethod
    def _score_in_range(cls, score: int, info: ValidationInfo) -> int:
        survey = info.data.get("survey")  # absent when the survey itself was invalid
        if survey is not None:
            low, high = SCORE_RANGES[survey]
            if not low <= score <= high:
                raise ValueError(f"{score} is outside the {survey} range {low}-{high}")
        return score


def nps_category(score: int) -> str:
    """Promoter 9-10, passive 7-8, detractor 0-6."""
    if score >= 9:
        return "promoter"
    if score >= 7:
        return "passive"
    return "detractor"


def score_in_words(event: FeedbackEvent) -> str:
    """'NPS 3/10 · detractor', 'CSAT 2/5 · dissatisfied', 'CES 5/5 · high effort'."""
    if event.survey == "nps":
        return f"NPS {event.score}/10 · {nps_category(event.score)}"
    if event.survey == "csat":
        word = "satisfied" if event.score >= 4 else "neutral" if event.score == 3 else "dissatisfied"
        return f"CSAT {event.score}/5 · {word}"
    word = "high effort" if event.score >= 4 else "moderate effort" if event.score == 3 else "low effort"
    return f"CES {event.score}/5 · {word}"


def field_paths() -> set[str]:
    """Dotted paths a rule may test. `attributes.<anything>` is allowed too (see `is_known_path`)."""
    paths = {name for name in FeedbackEvent.model_fields if name not in ("customer", "attributes")}
    paths |= {f"customer.{name}" for name in Customer.model_fields}
    return paths


def field_getter(path: str) -> Callable[[FeedbackEvent], Any]:
    """Read a dotted path (`customer.segment`, `attributes.region`) from an event; None when absent."""
    if path.startswith("attributes."):
        key = path.removeprefix("attributes.")
        return lambda event: event.attributes.get(key)
    return operator.attrgetter(path)


def is_known_path(path: str) -> bool:
    return path in KNOWN_PATHS or (path.startswith("attributes.") and len(path) > len("attributes."))


KNOWN_PATHS = field_paths()

__all__ = [
    "Customer",
    "FUTURE_LIMIT_S",
    "FeedbackEvent",
    "SCORE_RANGES",
    "Survey",
    "field_getter",
    "field_paths",
    "is_known_path",
    "nps_category",
    "score_in_words",
]
