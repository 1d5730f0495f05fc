"""The feedback event: one survey answer, as it arrives on `FEEDBACK_TOPIC`.

The pydantic models here are the schema and its documentation; `feedback-worker schema`
prints them as JSON Schema for producers.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from types import MethodType
from typing import Annotated, Any, Literal, Protocol, cast

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import SchemaValidator, core_schema

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
    language: Annotated[str, StringConstraints(to_lower=True, pattern=r"^[A-Za-z]{2}$")] | None = Field(
        None,
        description="The comment's language, an ISO 639-1 code (en, nl, et, de, es...). Absent: the worker decides it "
        "among the languages its themes use (docs/themes.md).",
    )
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


class Scored(Protocol):
    """An event or a follow-up answer, as score_in_words reads it (properties: the models are frozen)."""

    @property
    def survey(self) -> Survey: ...
    @property
    def score(self) -> int: ...


def score_in_words(event: Scored) -> str:
    """'NPS 3/10 · detractor', 'CSAT 2/5 · dissatisfied', 'CES 5/5 · high effort' (an event, or an answer in a task)."""
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


#: The themes a comment mentions (ids, ancestors included): not sent by producers, but added to EventData by the
#: rule set's tagging (rules.RuleSet.tag) before rules read it; `contains`/`contains_any` test membership.
THEMES_PATH = "comment.themes"
#: No theme mentioned.
NO_THEME_IDS: frozenset[str] = frozenset()


def field_getter(path: str) -> Callable[[FeedbackEvent], Any]:
    """Read a dotted path (`customer.segment`, `attributes.region`) from an event; None when absent."""
    if path.startswith("attributes."):
        key = path.removeprefix("attributes.")
        return lambda event: event.attributes.get(key)
    return operator.attrgetter(path)


def is_known_path(path: str) -> bool:
    return path in KNOWN_PATHS or (path.startswith("attributes.") and len(path) > len("attributes."))


KNOWN_PATHS = field_paths()

# -- the hot path's form of an event -------------------------------------------------------------

#: An event as plain dicts: what `event_data` returns, and `FeedbackEvent.model_dump()` too. Every
#: field is present (defaults filled in), `customer` is a dict of its own fields. Where rules define
#: themes, the rule set's tagging adds `themes` (THEMES_PATH) and `language` (when it decided one).
EventData = dict[str, Any]

#: Every (survey, score) a valid event can have.
VALID_SCORES = frozenset((survey, score) for survey, (low, high) in SCORE_RANGES.items() for score in range(low, high + 1))


def is_unhappy(survey: str, score: int) -> bool:
    """An unhappy response (README "Metric definitions"): an NPS detractor (0-6), a CSAT of 1-3 or a CES of 4-5.

    It counts towards revenue at risk, and decides whether a follow-up answer recovered the customer."""
    return score <= 6 if survey == "nps" else score <= 3 if survey == "csat" else score >= 4


#: Every (survey, score) that is an unhappy response.
UNHAPPY = frozenset(pair for pair in VALID_SCORES if is_unhappy(*pair))


#: The validator's function: a classmethod read on its class is a bound method (mypy sees a plain callable).
_SCORE_IN_RANGE = cast(MethodType, FeedbackEvent._score_in_range).__func__


def _as_dicts(schema: Any) -> Any:
    """FeedbackEvent's core schema with each model validated into a plain dict instead of an instance.

    The fields keep their own schemas (types, lengths, bounds, defaults), so exactly the same
    inputs are accepted; only the score-range validator is left out, as `event_data` checks
    VALID_SCORES. A schema feature this does not know is refused here, at import, rather than
    checked differently."""
    kind = schema["type"]
    if kind == "model":
        fields = schema["schema"]
        if fields["type"] != "model-fields" or fields.get("computed_fields") or schema.get("post_init") or schema.get("custom_init"):
            raise TypeError(f"event_data cannot mirror the model {schema['cls'].__name__}: it has more than plain fields")
        return core_schema.typed_dict_schema(
            {
                name: core_schema.typed_dict_field(_as_dicts(f["schema"]), required=f["schema"]["type"] != "default")
                for name, f in fields["fields"].items()
            },
            extra_behavior=schema.get("config", {}).get("extra_fields_behavior", "ignore"),
        )
    if kind == "function-after" and getattr(schema["function"]["function"], "__func__", None) is _SCORE_IN_RANGE:
        return _as_dicts(schema["schema"])
    if kind in ("default", "nullable"):
        return schema | {"schema": _as_dicts(schema["schema"])}
    if kind in ("str", "int", "float", "datetime", "literal", "any") or (kind == "dict" and "model" not in repr(schema)):
        return schema
    raise TypeError(f"event_data cannot mirror a {kind!r} schema in FeedbackEvent: teach events._as_dicts about it")


_DATA = SchemaValidator(_as_dicts(FeedbackEvent.__pydantic_core_schema__))


def event_data(value: bytes) -> EventData | None:
    """Validate like `FeedbackEvent.model_validate_json`, about twice as fast, into `EventData`.

    None: the value is not a valid event; `FeedbackEvent.model_validate_json(value)` says why
    (the dead letter's reason comes from the model, never from here)."""
    try:
        data = _DATA.validate_json(value)
    except ValidationError:
        return None
    return data if (data["survey"], data["score"]) in VALID_SCORES else None


_EPOCH_DAY = 719163  # date(1970, 1, 1).toordinal()
_OFFSETS: dict[Any, int] = {}  # tzinfo -> its UTC offset in whole seconds (pydantic shares one tzinfo per offset)


def epoch_seconds(when: datetime) -> int:
    """`int(when.timestamp())` for an aware datetime, in integer arithmetic: a third of the cost.

    Exact: for times before 1970 or after 2099, or offsets in fractions of a second, it asks `timestamp()`."""
    tz = when.tzinfo
    offset = _OFFSETS.get(tz)
    if offset is None:
        delta = when.utcoffset()
        if delta is None or delta.microseconds or len(_OFFSETS) > 1000:
            return int(when.timestamp())
        offset = _OFFSETS[tz] = int(delta.total_seconds())
    seconds = (when.toordinal() - _EPOCH_DAY) * 86400 + when.hour * 3600 + when.minute * 60 + when.second - offset
    if not 0 <= seconds < 4102444800:  # before 1970 int() rounds up, not down; beyond 2099 a float's µs may round
        return int(when.timestamp())
    return seconds


def data_getter(path: str) -> Callable[[EventData], Any]:
    """`field_getter` for EventData: the same dotted path, the same value (None when absent); and `comment.themes`."""
    if path == THEMES_PATH:
        return lambda data: data.get("themes", NO_THEME_IDS)
    if path.startswith("attributes."):
        key = path.removeprefix("attributes.")
        return lambda data: data["attributes"].get(key)
    outer, _, inner = path.partition(".")
    if inner:
        return lambda data: data[outer][inner]
    return operator.itemgetter(path)


__all__ = [
    "Customer",
    "EventData",
    "FUTURE_LIMIT_S",
    "FeedbackEvent",
    "NO_THEME_IDS",
    "SCORE_RANGES",
    "THEMES_PATH",
    "Survey",
    "VALID_SCORES",
    "data_getter",
    "epoch_seconds",
    "event_data",
    "field_getter",
    "field_paths",
    "is_known_path",
    "nps_category",
    "score_in_words",
]
