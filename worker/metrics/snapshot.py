"""The metric snapshot record on METRICS_TOPIC: a contract for downstream services.

The models are the schema (`feedback-worker schema snapshot`) and its documentation; the
figures in them are computed in tally.py.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class WindowRef(BaseModel):
    size: str = Field(description="Window size, e.g. 24h.")
    start: str = Field(description="Window start, RFC 3339, UTC.")
    end: str = Field(description="Window end (exclusive).")


class NpsFigures(BaseModel):
    responses: int
    promoters: int
    passives: int
    detractors: int
    score: float | None = Field(description="%promoters - %detractors, -100..100; null without responses.")
    margin_of_error: float | None = Field(description="95 % margin of the score, in points.")


class CsatFigures(BaseModel):
    responses: int
    satisfied: int = Field(description="Responses scoring 4-5.")
    score: float | None = Field(description="satisfied / responses x 100; null without responses.")


class CesFigures(BaseModel):
    responses: int
    mean: float | None = Field(description="Mean effort (1-5, higher = more effort); null without responses.")
    high_effort: int = Field(description="Responses scoring 4-5.")


class MetricSnapshot(BaseModel):
    """A `metrics.snapshot` record on METRICS_TOPIC; key `<size>|<start>|<dimension>`."""

    model_config = ConfigDict(frozen=True)

    type: Literal["metrics.snapshot"] = "metrics.snapshot"
    window: WindowRef
    dimension: dict[str, str] = Field(description="{} for the overall figure, else {path: value}.")
    final: bool = Field(description="True once, when the window has closed (end + lateness passed).")
    emitted_at: str
    responses: int
    nps: NpsFigures
    csat: CsatFigures
    ces: CesFigures
    unhappy_customers: int = Field(description="Distinct customers with an unhappy response in the window.")
    revenue_at_risk: float = Field(description="Their latest monthly_value x churn probability.")
    late_events: int = Field(description="Responses that arrived in this window too late for any open window.")
