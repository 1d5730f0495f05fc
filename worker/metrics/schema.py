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


class ThemeFigures(BaseModel):
    """One comment theme in the window: the snapshot's figures over the answers whose comment mentions it
    (docs/metrics.md "Themes")."""

    responses: int = Field(description="Answers in the window whose comment mentions the theme (or one of its children).")
    unhappy: int = Field(description="Distinct customers with an unhappy response mentioning the theme.")
    nps: NpsFigures
    csat: CsatFigures
    ces: CesFigures
    nps_impact: float | None = Field(
        description="The window's NPS minus the NPS of its answers that do not mention the theme, in points: negative "
        "when the theme pulls the score down. 0 when no NPS answer mentions it; null when the window has no NPS answer "
        "or every one mentions it."
    )
    revenue_at_risk: float = Field(
        description="Those unhappy customers' monthly_value, each as the snapshot counts it (from their latest unhappy "
        "response in the window), x churn probability."
    )


class Percentiles(BaseModel):
    p50: float | None = Field(None, description="Median, in seconds; null without data.")
    p90: float | None = Field(None, description="90th percentile, in seconds; null without data.")


class LoopFigures(BaseModel):
    """The closed loop in the window: each count is of lifecycle records dated in it (docs/metrics.md "Loop KPIs")."""

    opened: int = Field(0, description="Tasks opened.")
    acknowledged: int = Field(0, description="Acknowledgements (a reopened task can be acknowledged again).")
    resolved: int = Field(0, description="Resolutions.")
    reopened: int = Field(0, description="Reopens, by a person or by a still-unhappy follow-up answer.")
    still_unhappy: int = Field(0, description="Reopens by the customer's follow-up answer (reason still_unhappy).")
    escalated: int = Field(0, description="Escalations (not acknowledged in time, overdue).")
    closed_recovered: int = Field(0, description="Tasks closed by a follow-up answer that was not unhappy.")
    closed_no_response: int = Field(0, description="Tasks closed because no answer came within the recovery window.")
    acknowledged_within_sla: int = Field(0, description="Acknowledgements by the deadline (or with none).")
    resolved_within_sla: int = Field(0, description="Resolutions by the deadline.")
    time_to_acknowledge: Percentiles = Field(
        default_factory=Percentiles,
        description="From (re)opening to acknowledgement, in seconds (business time with an SLA calendar). Exact: "
        "nearest rank over every acknowledgement in the window.",
    )
    time_to_resolve: Percentiles = Field(
        default_factory=Percentiles,
        description="From (re)opening to resolution, in seconds (business time with an SLA calendar). Exact: "
        "nearest rank over every resolution in the window.",
    )
    recovery_rate: float | None = Field(
        None,
        description="closed_recovered / (closed_recovered + still_unhappy) x 100: of the follow-up answers that "
        "decided a task, the share that closed it; null when none did.",
    )
    revenue_recovered: float = Field(0.0, description="Monthly value of the distinct customers recovered in the window.")


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
    comments: int = Field(0, description="Responses with a comment.")
    tagged: int = Field(0, description="Responses whose comment mentions at least one theme (coverage: tagged / comments).")
    themes: dict[str, ThemeFigures] = Field(
        default_factory=dict,
        description="Theme id -> its figures, for each theme some response in the window mentions; an absent id had "
        "no response. A parent counts every answer mentioning it or a child. {} when the rules define no themes.",
    )
    loop: LoopFigures = Field(default_factory=LoopFigures, description="Loop KPIs of the follow-up tasks.")
    root_causes: dict[str, int] = Field(default_factory=dict, description="Root cause -> distinct tasks resolved with it in the window.")
