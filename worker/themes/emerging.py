"""Rising complaints: the terms of unhappy answers' comments that the latest window has far more of than usual.

Ops turn it on with an `emerging:` block in a rules file:

    emerging:
      channel: "#cx-insights"
      window: 1d        # the period judged
      baseline: 28d     # the periods before it
      min_count: 5
      min_ratio: 3

A term (a stem, or two consecutive stems: discovery.term_forms, stop words left out) is **rising** when its
count in the latest window is at least `min_count` and at least `min_ratio` × (its count over the baseline
+ 1) × window ÷ baseline: well above what a window usually holds, with +1 so that a term never seen before
still needs `min_count` × ... to rise and a term common all along never does.

This module is the arithmetic and the wording, pure and deterministic; the counting (per window, exact
across replicas) and the posting (once per window and term) are the stream's and the delivery core's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..notation import Duration, format_duration
from .matcher import ThemeMatcher

DEFAULT_TEMPLATE = "emerging.slack.j2"


class EmergingSpec(BaseModel):
    """`emerging:` in a rules file (at most one across the files)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(min_length=1, description="Where rising complaints are posted, e.g. #cx-insights.")
    window: Duration = Field(timedelta(days=1), description="The period judged: the latest whole window, when it ends.")
    baseline: Duration = Field(timedelta(days=28), description="The periods before it, whose counts are the usual.")
    min_count: int = Field(5, ge=1, description="A term needs at least this many unhappy comments in the window.")
    min_ratio: float = Field(3.0, gt=0, description="... and this many times its usual count per window (+1 smoothing).")
    examples: int = Field(3, ge=0, le=10, description="Example comments in the message.")
    template: str = Field(DEFAULT_TEMPLATE, description="The Slack template (templates/).")

    @model_validator(mode="after")
    def _whole_windows(self) -> EmergingSpec:
        if self.window < timedelta(minutes=1) or self.window.total_seconds() % 60:
            raise ValueError(f"window must be whole minutes, at least 1m, got {format_duration(self.window)}")
        if self.baseline < self.window or self.baseline.total_seconds() % self.window.total_seconds():
            raise ValueError(
                f"baseline must be a whole number of windows ({format_duration(self.window)}), got {format_duration(self.baseline)}"
            )
        return self

    @property
    def windows(self) -> int:
        """Baseline windows: the history needed before anything may rise."""
        return int(self.baseline.total_seconds() // self.window.total_seconds())

    def usual(self, baseline_count: int) -> float:
        """A window's expected count of a term counted `baseline_count` times over the baseline (smoothed by +1)."""
        return (baseline_count + 1) / self.windows

    def is_rising(self, count: int, baseline_count: int) -> bool:
        return count >= self.min_count and count >= self.min_ratio * self.usual(baseline_count)


@dataclass(frozen=True)
class RisingTerm:
    """One rising term of one window: what the message says about it."""

    key: str  # stems: "zipper" or "zipper broke" (the counting key)
    written: str  # its most frequent written form in the window
    count: int  # unhappy comments with it in the window
    baseline_count: int  # over the baseline windows before it
    usual: float  # per window, smoothed

    @property
    def ratio(self) -> float:
        return self.count / self.usual


def rising_terms(
    latest: Mapping[str, int], baseline: Mapping[str, int], written: Mapping[str, str], spec: EmergingSpec
) -> list[RisingTerm]:
    """The rising terms of a window, most frequent first (ties: by key). A two-stem phrase is left out where one of
    its stems rises as often (the same wave, said once); a stem is kept beside a phrase that is rarer."""
    found = [
        RisingTerm(key, written.get(key, key), count, baseline.get(key, 0), spec.usual(baseline.get(key, 0)))
        for key, count in latest.items()
        if spec.is_rising(count, baseline.get(key, 0))
    ]
    singles = {term.key: term.count for term in found if " " not in term.key}
    kept = [t for t in found if " " not in t.key or all(singles.get(stem, 0) < t.count for stem in t.key.split(" "))]
    return sorted(kept, key=lambda term: (-term.count, term.key))


def covering(matcher: ThemeMatcher | None, term: RisingTerm, language: str | None) -> frozenset[str]:
    """The themes the term's own words mention (in `language`, or as detected): "no theme covers it" when empty."""
    if matcher is None:
        return frozenset()
    return matcher.tag(term.written, language).themes
