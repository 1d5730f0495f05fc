"""Metric rules: alert on a rolling figure ("enterprise NPS over the last 24h is below zero").

    when:
      metric: nps.score        # any numeric snapshot field
      window: 24h              # a configured window size
      dimension: {customer.segment: enterprise}   # optional; the overall figure by default
      lt: 0                    # lt, lte, gt, gte, eq, ne (several are ANDed)
      min_responses: 30        # below this the figure is "unknown": no firing, no re-arming

Loop KPIs too (`loop.recovery_rate`, `loop.time_to_resolve.p90`, ...): for them `min_responses`
counts the records behind the figure (see `responses_for`).

A rule is checked on each new snapshot of the *current* window (the one covering the last
`window`). It fires once when the condition becomes true and re-arms only after it has been
false; that state lives in the worker state topic, so a restart or a move to another
replica does not fire it again.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..events import is_known_path
from ..notation import Duration, format_duration
from .partials import MetricState
from .schema import LoopFigures, MetricSnapshot

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "eq": operator.eq,
    "ne": operator.ne,
}
DEFAULT_METRIC_TEMPLATE = "metric.slack.j2"


def numeric_fields(model: type[BaseModel] = MetricSnapshot, prefix: str = "") -> list[str]:
    """Dotted paths of every number in a snapshot: `responses`, `nps.score`, `ces.mean`, ..."""
    paths = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation is not MetricSnapshot:
            if name != "window":
                paths += numeric_fields(annotation, f"{prefix}{name}.")
        elif annotation in (int, float, float | None, int | None):
            paths.append(prefix + name)
    return paths


METRIC_PATHS = numeric_fields()


class MetricCondition(BaseModel):
    """The `when:` of a metric rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="A numeric snapshot field, e.g. nps.score, csat.score, revenue_at_risk.")
    window: Duration = Field(description="A configured window size, e.g. 24h.")
    dimension: dict[str, str] = Field(default_factory=dict, description="{path: value}; the overall figure by default.")
    min_responses: int = Field(1, ge=1, description="Fewer responses: the figure is not trusted either way.")
    lt: float | None = None
    lte: float | None = None
    gt: float | None = None
    gte: float | None = None
    eq: float | None = None
    ne: float | None = None

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if metric not in METRIC_PATHS:
            raise ValueError(f"unknown metric {metric!r} (expected one of: {', '.join(METRIC_PATHS)})")
        return metric

    @field_validator("dimension")
    @classmethod
    def _one_dimension(cls, dimension: dict[str, str]) -> dict[str, str]:
        if len(dimension) > 1:
            raise ValueError("a snapshot has at most one dimension: give one {path: value}")
        for path in dimension:
            if not is_known_path(path):
                raise ValueError(f"unknown field path {path!r}")
        return dimension

    @model_validator(mode="after")
    def _has_comparison(self) -> MetricCondition:
        if not self.comparisons:
            raise ValueError(f"give at least one comparison: {', '.join(COMPARISONS)}")
        return self

    @property
    def comparisons(self) -> list[tuple[str, float]]:
        return [(op, getattr(self, op)) for op in COMPARISONS if getattr(self, op) is not None]

    @property
    def dimension_key(self) -> str:
        return "".join(f"{path}={value}" for path, value in self.dimension.items())

    def describe(self) -> str:
        """`nps.score < 0 over 24h (customer.segment=enterprise)`."""
        symbols = {"lt": "<", "lte": "≤", "gt": ">", "gte": "≥", "eq": "=", "ne": "≠"}
        tests = " and ".join(f"{symbols[op]} {value:g}" for op, value in self.comparisons)
        where = f" ({self.dimension_key})" if self.dimension else ""
        return f"{self.metric} {tests} over {format_duration(self.window)}{where}"


@dataclass(frozen=True)
class MetricRule:
    id: str
    description: str
    severity: str
    condition: MetricCondition
    owner: str
    channel: str | None
    template: str
    location: Any = field(default=None, compare=False)


def metric_value(snapshot: MetricSnapshot, path: str) -> float | None:
    value: Any = snapshot
    for part in path.split("."):
        value = getattr(value, part)
    return value


def responses_for(snapshot: MetricSnapshot, path: str) -> int:
    """The responses behind a figure: NPS answers for nps.score, all answers for revenue_at_risk; for a loop KPI, the
    lifecycle records behind it (`loop_basis`)."""
    section, _, rest = path.partition(".")
    if section == "loop":
        return loop_basis(snapshot.loop, rest.split(".", 1)[0])
    return getattr(snapshot, section).responses if section in ("nps", "csat", "ces") else snapshot.responses


def loop_basis(loop: LoopFigures, figure: str) -> int:
    """What a loop figure is computed from: the decided follow-up answers for recovery_rate, the acknowledgements for
    time_to_acknowledge and acknowledged_within_sla, the resolutions for time_to_resolve and resolved_within_sla; for a
    plain count, every lifecycle record in the window (so "fewer than 5 resolved" can hold when none was)."""
    if figure == "recovery_rate":
        return loop.closed_recovered + loop.still_unhappy
    if figure in ("time_to_acknowledge", "acknowledged_within_sla"):
        return loop.acknowledged
    if figure in ("time_to_resolve", "resolved_within_sla"):
        return loop.resolved
    return (
        loop.opened + loop.acknowledged + loop.resolved + loop.reopened + loop.escalated + loop.closed_recovered + loop.closed_no_response
    )


def holds(condition: MetricCondition, snapshot: MetricSnapshot) -> bool | None:
    """True/False, or None when the figure cannot be trusted (no value, too few responses)."""
    value = metric_value(snapshot, condition.metric)
    if value is None or responses_for(snapshot, condition.metric) < condition.min_responses:
        return None
    return all(COMPARISONS[op](value, threshold) for op, threshold in condition.comparisons)


#: `fire(rule, snapshot, firing, again)`: post the alert of this firing (`<rule id>|<dimension>@<unix s>`, which names its
#: slot, see worker/delivery/slots.py) once; False if none is posted (silenced, dead-lettered).
#: `again`: the rule still fires, and that alert should be in Slack by now; the worker makes sure it is.
Fire = Callable[[MetricRule, MetricSnapshot, str, bool], bool]


class MetricWatch:
    """An emitter watcher: checks metric rules on each snapshot of a current window.

    A firing is recorded with the slot of its alert, so a crash between the record and the post
    does not lose the alert: while the rule still fires, each snapshot asks the worker to make sure
    it is in Slack (posted, on its way, or found in the channel; else posted now)."""

    def __init__(
        self,
        rules: tuple[MetricRule, ...],
        state: MetricState,
        current_start: Callable[[int, int], int],
        fire: Fire,
    ) -> None:
        self.rules = rules
        self.state = state
        self.current_start = current_start
        self.fire = fire

    def __call__(self, snapshot: MetricSnapshot, key: tuple[int, int, str], now: int) -> None:
        size, start, dim = key
        if snapshot.final or start != self.current_start(size, now):
            return
        for rule in self.rules:
            condition = rule.condition
            if condition.window != timedelta(seconds=size) or condition.dimension_key != dim:
                continue
            verdict = holds(condition, snapshot)
            state_key = f"{rule.id}|{dim}"
            firing = self.state.firing.get(state_key, False)
            if verdict is True and not firing:
                firing_id = f"{state_key}@{now}"
                posted = self.fire(rule, snapshot, firing_id, False)  # queued: what it owes is written after this record
                self.state.set_firing(state_key, True, firing_id if posted else None)
            elif verdict is True and (slot := self.state.firing_slots.get(state_key)) is not None:
                self.fire(rule, snapshot, slot, True)
            elif verdict is False and firing:
                self.state.set_firing(state_key, False)  # re-armed: the next drop alerts again
