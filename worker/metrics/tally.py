"""Metric arithmetic: the counts kept per pane (Tally) and the snapshot figures computed from them.

Definitions (README "Metric definitions"):
- NPS: promoters 9-10, passives 7-8, detractors 0-6; %promoters - %detractors (-100..100).
- CSAT: satisfied (4-5) / responses x 100.  CES: mean effort (1-5); 4-5 is high effort.
- Unhappy response: NPS detractor, CSAT 1-3 or CES 4-5. Revenue at risk: the latest
  monthly_value of each distinct unhappy customer x churn probability.

Counts are exact integers; scores are rounded to 2 decimals for display, never used to
compute anything else. A metric with no responses has a null score, not 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..events import UNHAPPY
from .schema import CesFigures, CsatFigures, NpsFigures

#: customer id -> (occurred_at of their latest unhappy response, its monthly_value)
Unhappy = dict[str, tuple[int, float | None]]


@dataclass(slots=True)
class Tally:
    """Counts for one pane (or a sum of panes). `merge` is exact: replace-and-sum never rounds."""

    responses: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    csat: int = 0
    satisfied: int = 0
    ces: int = 0
    effort_sum: int = 0
    high_effort: int = 0
    late: int = 0
    unhappy: Unhappy = field(default_factory=dict)

    def add(self, survey: str, score: int, customer: str, ts: int, value: float | None) -> None:
        """One response."""
        self.count(survey, score, 1)
        if (survey, score) in UNHAPPY:
            self.unhappy_answer(customer, ts, value)

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

    def unhappy_answer(self, customer: str, ts: int, value: float | None) -> None:
        """Keep the customer's latest value (ties: the larger value, so order never matters)."""
        seen = self.unhappy.get(customer)
        if seen is None or (ts, _num(value)) > (seen[0], _num(seen[1])):
            self.unhappy[customer] = (ts, value)

    def merge(self, other: Tally) -> None:
        self.responses += other.responses
        self.promoters += other.promoters
        self.passives += other.passives
        self.detractors += other.detractors
        self.csat += other.csat
        self.satisfied += other.satisfied
        self.ces += other.ces
        self.effort_sum += other.effort_sum
        self.high_effort += other.high_effort
        self.late += other.late
        for customer, (ts, value) in other.unhappy.items():
            self.unhappy_answer(customer, ts, value)

    def to_json(self) -> dict[str, Any]:
        counts = {name: getattr(self, name) for name in _COUNTS}
        return counts | {"unhappy": {c: [ts, v] for c, (ts, v) in self.unhappy.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tally:
        tally = cls(**{name: data[name] for name in _COUNTS})
        tally.unhappy = {c: (ts, v) for c, (ts, v) in data["unhappy"].items()}
        return tally


_COUNTS = [name for name in Tally.__dataclass_fields__ if name != "unhappy"]


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


def revenue_at_risk(unhappy: Unhappy, churn_probability: float) -> float:
    # fsum: exact, so the figure does not depend on the order partials were merged in
    return math.fsum(value or 0.0 for _, value in unhappy.values()) * churn_probability


def figures(tally: Tally, churn_probability: float) -> dict[str, Any]:
    """Everything in a snapshot that comes from the counts."""
    nps_n = tally.promoters + tally.passives + tally.detractors
    return {
        "responses": tally.responses,
        "nps": NpsFigures(
            responses=nps_n,
            promoters=tally.promoters,
            passives=tally.passives,
            detractors=tally.detractors,
            score=_round(nps_score(tally.promoters, tally.detractors, nps_n)),
            margin_of_error=_round(nps_margin_of_error(tally.promoters, tally.detractors, nps_n)),
        ),
        "csat": CsatFigures(
            responses=tally.csat, satisfied=tally.satisfied, score=_round(tally.satisfied / tally.csat * 100 if tally.csat else None)
        ),
        "ces": CesFigures(
            responses=tally.ces, mean=_round(tally.effort_sum / tally.ces if tally.ces else None), high_effort=tally.high_effort
        ),
        "unhappy_customers": len(tally.unhappy),
        "revenue_at_risk": _round(revenue_at_risk(tally.unhappy, churn_probability)) or 0.0,
        "late_events": tally.late,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
