"""Metric windows: what ops configure under `metrics:`, and the pane arithmetic behind it.

Windows are by event time (`occurred_at`), aligned to the UTC epoch. A hopping window of
`size` every `step` is the sum of its step-sized *panes*, so an event updates one pane per
distinct step, never every window it belongs to (24 for "24h every 1h").

Times here are whole seconds since the epoch: cheap to compute on the hot path and exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..events import is_known_path
from ..notation import Duration, format_duration


class WindowSpec(BaseModel):
    """`{size: 24h, step: 1h}`: a 24-hour window starting every hour. No step: tumbling."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Duration
    step: Duration | None = None
    label: str = Field("", description="Name in snapshot keys and `window.size`; defaults to the size as written (`24h`).")

    @model_validator(mode="before")
    @classmethod
    def _label_as_written(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("label"):
            size = data.get("size")
            label = size.strip() if isinstance(size, str) else format_duration(size) if isinstance(size, timedelta) else ""
            data = {**data, "label": label}
        return data

    @model_validator(mode="after")
    def _step_divides_size(self) -> WindowSpec:
        size, step = self.size_s, self.step_s
        if self.size % timedelta(minutes=1) or (self.step or self.size) % timedelta(minutes=1):
            raise ValueError("window size and step must be whole minutes")
        if step > size or size % step:
            raise ValueError(f"step {format_duration(self.step or self.size)} must divide size {format_duration(self.size)}")
        if 86400 % step and step % 86400:
            raise ValueError("step must divide a day (or be whole days) so windows align to UTC midnight")
        return self

    @property
    def size_s(self) -> int:
        return int(self.size.total_seconds())

    @property
    def step_s(self) -> int:
        return int((self.step or self.size).total_seconds())


DEFAULT_WINDOWS = [
    WindowSpec.model_validate({"size": "1h"}),
    WindowSpec.model_validate({"size": "24h", "step": "1h"}),
    WindowSpec.model_validate({"size": "7d", "step": "1d"}),
]


class MetricsConfig(BaseModel):
    """The `metrics:` block of the worker's config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Publish metric snapshots to METRICS_TOPIC.")
    windows: list[WindowSpec] = Field(default_factory=lambda: list(DEFAULT_WINDOWS), min_length=1)
    dimensions: list[str] = Field(
        default_factory=lambda: ["customer.segment"], description="Field paths; the overall figure is always emitted."
    )
    lateness: Duration = Field(timedelta(hours=1), description="How long a window stays open after its end.")
    emit_every: Duration = Field(timedelta(seconds=30), description="Interim snapshots of changed open windows.")
    churn_probability: float = Field(0.95, ge=0, le=1, description="Share of at-risk revenue expected to churn.")

    @field_validator("dimensions")
    @classmethod
    def _known_paths(cls, paths: list[str]) -> list[str]:
        for path in paths:
            if not is_known_path(path):
                raise ValueError(f"unknown field path {path!r} (e.g. customer.segment, channel, attributes.region)")
        if len(set(paths)) != len(paths):
            raise ValueError("a dimension is listed twice")
        return paths

    @field_validator("windows")
    @classmethod
    def _distinct_sizes(cls, windows: list[WindowSpec]) -> list[WindowSpec]:
        sizes = [w.size_s for w in windows]
        if len(set(sizes)) != len(sizes):
            raise ValueError("two windows have the same size: one series per size")
        return windows

    def steps(self) -> dict[int, int]:
        """Each distinct pane size (step), with the largest window using it: how long a pane lives."""
        steps: dict[int, int] = {}
        for window in self.windows:
            steps[window.step_s] = max(steps.get(window.step_s, 0), window.size_s)
        return steps


@dataclass(frozen=True, order=True)
class Window:
    """One concrete window: [start, start + size)."""

    size: int
    start: int

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def label(self) -> str:
        return format_duration(timedelta(seconds=self.size))


def pane_start(ts: int, step: int) -> int:
    return ts - ts % step


def windows_of_pane(start: int, step: int, size: int) -> range:
    """Starts of the windows of `size` (every `step`) that contain the pane starting at `start`."""
    return range(start - size + step, start + 1, step)


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
