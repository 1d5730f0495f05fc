"""Metric arithmetic: the counts kept per pane (Tally) and the snapshot figures computed from them.

Definitions (README "Metric definitions"):
- NPS: promoters 9-10, passives 7-8, detractors 0-6; %promoters - %detractors (-100..100).
- CSAT: satisfied (4-5) / responses x 100.  CES: mean effort (1-5); 4-5 is high effort.
- Unhappy response: NPS detractor, CSAT 1-3 or CES 4-5. Revenue at risk: the latest
  monthly_value of each distinct unhappy customer x churn probability.
- Themes (docs/metrics.md "Themes"): per theme id, the Counts of the answers whose comment mentions
  it, so its figures come out of the same arithmetic, and its unhappy customers; its revenue at risk
  is theirs as the window counts it. Its NPS impact is the window's NPS minus the NPS of the window's
  answers that do not mention it (the window's counts minus the theme's).

Counts are exact integers; scores are rounded to 2 decimals for display, never used to
compute anything else. A metric with no responses has a null score, not 0.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Set
from dataclasses import dataclass, field
from typing import Any

from ..events import UNHAPPY
from .schema import CesFigures, CsatFigures, NpsFigures, ThemeFigures

#: customer id -> (occurred_at of their latest unhappy response, its monthly_value)
Unhappy = dict[str, tuple[int, float | None]]


@dataclass(slots=True)
class Counts:
    """The survey counts of some responses: a window's, a pane's, or a theme's within one."""

    responses: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat: int = 0
    satisfied: int = 0
    ces: int = 0
    effort_sum: int = 0
    high_effort: int = 0

    def count(self, survey: str, score: int, n: int) -> None:
        """`n` responses with this score, the counts only (see `unhappy_answer` for who was unhappy)."""
        self.responses += n
        if survey == "nps":
            if score >= 9:
                self.promoters += n
            elif score >= 7:
                self.passives += n
            else:
                self.detractors += n
        elif survey == "csat":
            self.csat += n
            if score >= 4:
                self.satisfied += n
        else:
            self.ces += n
            self.effort_sum += score * n
            if score >= 4:
                self.high_effort += n

    def _merge_counts(self, other: Counts) -> None:
        self.responses += other.responses
        self.promoters += other.promoters
        self.passives += other.passives
        self.detractors += other.detractors
        self.csat += other.csat
        self.satisfied += other.satisfied
        self.ces += other.ces
        self.effort_sum += other.effort_sum
        self.high_effort += other.high_effort


@dataclass(slots=True)
class ThemeTally(Counts):
    """The responses whose comment mentions one theme, within a Tally. Its unhappy customers are ids only: their
    value is the one the Tally keeps for them (their latest unhappy response in it, whatever it mentions)."""

    unhappy: set[str] = field(default_factory=set)

    def merge(self, other: ThemeTally) -> None:
        self._merge_counts(other)
        self.unhappy |= other.unhappy

    def to_json(self) -> list[Any]:
        """The counts in `Counts` order, then the unhappy customers sorted: compact, as every checkpoint republishes them."""
        return [*_theme_counts(self), sorted(self.unhappy)]

    @classmethod
    def from_json(cls, data: list[Any]) -> ThemeTally:
        tally = cls(*data[:-1])
        tally.unhappy = set(data[-1])
        return tally


@dataclass(slots=True)
class Tally(Counts):
    """Counts for one pane (or a sum of panes). `merge` is exact: replace-and-sum never rounds."""

    late: int = 0
    comments: int = 0  # responses with a comment
    tagged: int = 0  # of those, the ones whose comment mentions at least one theme
    unhappy: Unhappy = field(default_factory=dict)
    themes: dict[str, ThemeTally] = field(default_factory=dict)  # theme id -> the responses whose comment mentions it

    def add(self, survey: str, score: int, customer: str, ts: int, value: float | None, themes: Set[str] | None = None) -> None:
        """One response. `themes`: None without a comment, else the themes the comment mentions (maybe none)."""
        self.count(survey, score, 1)
        unhappy = (survey, score) in UNHAPPY
        if unhappy:
            self.unhappy_answer(customer, ts, value)
        if themes is not None:
            self.commented(survey, score, 1, themes)
            if unhappy:
                for theme in themes:
                    self.theme(theme).unhappy.add(customer)

    def commented(self, survey: str, score: int, n: int, themes: Set[str]) -> None:
        """`n` of the responses `count` counted have a comment mentioning `themes` (maybe none): the counts only."""
        self.comments += n
        if themes:
            self.tagged += n
            for theme in themes:
                self.theme(theme).count(survey, score, n)

    def theme(self, theme: str) -> ThemeTally:
        """The responses mentioning `theme` (empty on first use). Whoever adds an unhappy customer to it adds their
        response to this Tally's `unhappy_answer` too."""
        tally = self.themes.get(theme)
        if tally is None:
            tally = self.themes[theme] = ThemeTally()
        return tally

    def unhappy_answer(self, customer: str, ts: int, value: float | None) -> None:
        """Keep the customer's latest value (ties: the larger value, so order never matters)."""
        seen = self.unhappy.get(customer)
        if seen is None or (ts, _num(value)) > (seen[0], _num(seen[1])):
            self.unhappy[customer] = (ts, value)

    def merge(self, other: Tally) -> None:
        self._merge_counts(other)
        self.late += other.late
        self.comments += other.comments
        self.tagged += other.tagged
        for customer, (ts, value) in other.unhappy.items():
            self.unhappy_answer(customer, ts, value)
        for theme, counts in other.themes.items():
            self.theme(theme).merge(counts)

    def to_json(self) -> dict[str, Any]:
        """Every count (the older fields as before, so an older worker still reads it), and `themes` if any. For
        json.dumps: `unhappy` is this Tally's own dict, not a copy."""
        data = {name: getattr(self, name) for name in _COUNTS}
        data["unhappy"] = self.unhappy  # (ts, value) tuples: JSON arrays
        if self.themes:
            data["themes"] = {theme: tally.to_json() for theme, tally in self.themes.items()}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        """`to_json`'s, or an older worker's (no comments, tagged or themes: 0 and none)."""
        tally = cls(**{name: data.get(name, 0) for name in _COUNTS})
        tally.unhappy = {c: (ts, v) for c, (ts, v) in data["unhappy"].items()}
        if "themes" in data:
            tally.themes = {theme: ThemeTally.from_json(counts) for theme, counts in data["themes"].items()}
        return tally


_COUNTS = [name for name in Tally.__dataclass_fields__ if name not in ("unhappy", "themes")]
_theme_counts = operator.attrgetter(*Counts.__dataclass_fields__)


def _num(value: float | None) -> float:
    return -1.0 if value is None else value


def nps_score(promoters: int, detractors: int, responses: int) -> float | None:
    if responses == 0:
        return None
    return (promoters - detractors) / responses * 100


def nps_margin_of_error(promoters: int, detractors: int, responses: int) -> float | None:
    """1.96 x sqrt((p+ + p- - (p+ - p-)^2) / n) x 100: the 95 % margin, in NPS points."""
    if responses == 0:
        return None
    plus, minus = promoters / responses, detractors / responses
    variance = max(plus + minus - (plus - minus) ** 2, 0.0)
    return 1.96 * math.sqrt(variance / responses) * 100


def revenue_at_risk(unhappy: Unhappy, churn_probability: float, only: Set[str] | None = None) -> float:
    """`only`: these customers' (each in `unhappy`), not everyone's."""
    values = unhappy.values() if only is None else (unhappy.get(customer, (0, None)) for customer in only)
    # fsum: exact, so the figure does not depend on the order partials were merged in
    return math.fsum(value or 0.0 for _, value in values) * churn_probability


def nps_impact(window: Counts, theme: Counts) -> float | None:
    """The window's NPS minus the NPS of its answers that do not mention the theme, in points (unrounded): what the
    theme's answers move the score by. None when either is undefined: the window has no NPS answer, or every one
    mentions the theme. 0 when none does."""
    whole = nps_score(window.promoters, window.detractors, _nps_n(window))
    rest = nps_score(window.promoters - theme.promoters, window.detractors - theme.detractors, _nps_n(window) - _nps_n(theme))
    return None if whole is None or rest is None else whole - rest


def figures(tally: Tally, churn_probability: float) -> dict[str, Any]:
    """Everything in a snapshot that comes from the counts."""
    return {
        "responses": tally.responses,
        "nps": _nps(tally),
        "csat": _csat(tally),
        "ces": _ces(tally),
        "unhappy_customers": len(tally.unhappy),
        "revenue_at_risk": _money(tally, churn_probability),
        "late_events": tally.late,
        "comments": tally.comments,
        "tagged": tally.tagged,
        "themes": {theme: theme_figures(counts, tally, churn_probability) for theme, counts in sorted(tally.themes.items())},
    }


def theme_figures(theme: ThemeTally, window: Tally, churn_probability: float) -> ThemeFigures:
    """One theme's figures in a window: the snapshot's, over the answers mentioning it, and its NPS impact. Its
    revenue at risk: its unhappy customers', each at the value the window counts them at."""
    impact = nps_impact(window, theme)
    return ThemeFigures(
        responses=theme.responses,
        unhappy=len(theme.unhappy),
        nps=_nps(theme),
        csat=_csat(theme),
        ces=_ces(theme),
        nps_impact=None if impact is None else round(impact, 2) + 0.0,  # + 0.0: -0.0 (a tiny negative, rounded) is 0.0
        revenue_at_risk=_round(revenue_at_risk(window.unhappy, churn_probability, theme.unhappy)) or 0.0,
    )


def _nps_n(tally: Counts) -> int:
    return tally.promoters + tally.passives + tally.detractors


def _nps(tally: Counts) -> NpsFigures:
    nps_n = _nps_n(tally)
    return NpsFigures(
        responses=nps_n,
        promoters=tally.promoters,
        passives=tally.passives,
        detractors=tally.detractors,
        score=_round(nps_score(tally.promoters, tally.detractors, nps_n)),
        margin_of_error=_round(nps_margin_of_error(tally.promoters, tally.detractors, nps_n)),
    )


def _csat(tally: Counts) -> CsatFigures:
    return CsatFigures(
        responses=tally.csat, satisfied=tally.satisfied, score=_round(tally.satisfied / tally.csat * 100 if tally.csat else None)
    )


def _ces(tally: Counts) -> CesFigures:
    return CesFigures(responses=tally.ces, mean=_round(tally.effort_sum / tally.ces if tally.ces else None), high_effort=tally.high_effort)


def _money(tally: Tally, churn_probability: float) -> float:
    return _round(revenue_at_risk(tally.unhappy, churn_probability)) or 0.0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
