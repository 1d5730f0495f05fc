"""HEARD's last step across tasks: which root causes cost the most, and whether fixing them won customers back.

A pure function of cases (case.py) and two periods (schedule.py), so the keeper's digest
(from the state topic) and `feedback-worker report root-causes` (from FOLLOWUP_TOPIC) say the
same for the same tasks. For the tasks resolved in a period, per root cause:

- tasks: how many were resolved with it (a task resolved twice in the period counts once,
  with its last root cause; one resolved in both periods counts in both);
- revenue at risk: the monthly value of their distinct customers × the churn probability;
- recovery rate: of the answers to the follow-up survey after those resolutions, the share
  that was not unhappy (recovered ÷ (recovered + still_unhappy) × 100; None when none came);
- examples: up to two of their customers' comments, most valuable customer first. Comments
  are untrusted text: whoever shows them escapes them (the Slack template, `plain_table`).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any, Literal

from .case import Case, fold, opened
from .records import FollowUpTask, FollowUpUpdate
from .schedule import Period
from .transitions import STILL_UNHAPPY

EXAMPLE_CHARS = 280  # an example is a glimpse, not the whole comment

Outcome = Literal["recovered", "still_unhappy"]


@dataclass(frozen=True)
class CauseLine:
    """One root cause in a period, against the period before."""

    cause: str
    tasks: int
    tasks_before: int
    revenue: float  # at risk per month, this period
    revenue_before: float
    recovered: int
    still_unhappy: int
    examples: tuple[str, ...] = ()

    @property
    def recovery_rate(self) -> float | None:
        return recovery_rate(self.recovered, self.still_unhappy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "tasks": self.tasks,
            "tasks_before": self.tasks_before,
            "revenue_at_risk": self.revenue,
            "revenue_at_risk_before": self.revenue_before,
            "recovered": self.recovered,
            "still_unhappy": self.still_unhappy,
            "recovery_rate": self.recovery_rate,
            "examples": list(self.examples),
        }


@dataclass(frozen=True)
class CauseReport:
    period: Period
    previous: Period
    tasks: int  # resolved in the period
    tasks_before: int
    revenue: float  # at risk per month: the distinct customers of those tasks
    revenue_before: float
    recovered: int
    still_unhappy: int
    by_tasks: tuple[CauseLine, ...]  # the top causes by tasks
    by_revenue: tuple[CauseLine, ...]  # the top causes by revenue at risk (only those with some)
    causes: int  # distinct root causes in the period
    open_at_end: int = 0  # tasks opened before the period's end and not resolved: what matters when none was
    overdue_at_end: int = 0  # of those, past their resolve-by time at the period's end
    lines: tuple[CauseLine, ...] = field(default=(), repr=False)  # every cause of either period, by tasks

    @property
    def recovery_rate(self) -> float | None:
        return recovery_rate(self.recovered, self.still_unhappy)

    def to_dict(self) -> dict[str, Any]:
        return {
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "previous": {"start": self.previous.start.isoformat(), "end": self.previous.end.isoformat()},
            "tasks": self.tasks,
            "tasks_before": self.tasks_before,
            "revenue_at_risk": self.revenue,
            "revenue_at_risk_before": self.revenue_before,
            "recovered": self.recovered,
            "still_unhappy": self.still_unhappy,
            "recovery_rate": self.recovery_rate,
            "causes": self.causes,
            "open_at_end": self.open_at_end,
            "overdue_at_end": self.overdue_at_end,
            "by_tasks": [line.to_dict() for line in self.by_tasks],
            "by_revenue": [line.to_dict() for line in self.by_revenue],
        }


def recovery_rate(recovered: int, still_unhappy: int) -> float | None:
    answered = recovered + still_unhappy
    return None if answered == 0 else round(100 * recovered / answered, 1)


@dataclass
class _Tally:
    tasks: list[tuple[Case, Outcome | None]] = field(default_factory=list)

    def revenue(self, churn_probability: float) -> float:
        return _revenue((case for case, _ in self.tasks), churn_probability)

    def count(self, outcome: Outcome) -> int:
        return sum(result == outcome for _, result in self.tasks)


def resolved_in(case: Case, period: Period) -> tuple[str, Outcome | None] | None:
    """(root cause, what the customer's next answer said) of the case's last resolution in the period; None: not resolved in it."""
    last = None
    for index, mark in enumerate(case.marks):
        if mark.kind == "resolved" and mark.at.astimezone(UTC) in period:
            last = index
    if last is None:
        if not case.marks and case.resolution is not None and case.resolution.at.astimezone(UTC) in period:
            return case.resolution.root_cause, _outcome_of(case.outcome)  # a case saved before marks were kept
        return None
    cause = case.marks[last].detail or (case.resolution.root_cause if case.resolution else "unknown")
    for mark in case.marks[last + 1 :]:  # the answer that closed or reopened it, if any came yet
        if mark.kind == "closed":
            return cause, _outcome_of(mark.detail)
        if mark.kind == "reopened":
            return cause, "still_unhappy" if mark.detail == STILL_UNHAPPY else None
        if mark.kind == "resolved":
            break
    return cause, None


def root_cause_report(
    cases: Iterable[Case], period: Period, previous: Period, churn_probability: float, top: int = 5, examples: int = 2
) -> CauseReport:
    """The top root causes of the tasks resolved in `period`, each against `previous`; and the backlog at its end."""
    cases = list(cases)
    now: dict[str, _Tally] = {}
    before: dict[str, _Tally] = {}
    for case in cases:
        for tallies, span in ((now, period), (before, previous)):
            found = resolved_in(case, span)
            if found is not None:
                tallies.setdefault(found[0], _Tally()).tasks.append((case, found[1]))
    empty = _Tally()
    lines = [
        CauseLine(
            cause=cause,
            tasks=len(now.get(cause, empty).tasks),
            tasks_before=len(before.get(cause, empty).tasks),
            revenue=now.get(cause, empty).revenue(churn_probability),
            revenue_before=before.get(cause, empty).revenue(churn_probability),
            recovered=now.get(cause, empty).count("recovered"),
            still_unhappy=now.get(cause, empty).count("still_unhappy"),
            examples=_examples(now.get(cause, empty), examples),
        )
        for cause in sorted(set(now) | set(before))
    ]
    lines.sort(key=lambda line: (-line.tasks, -line.revenue, -line.tasks_before, line.cause))
    current = [line for line in lines if line.tasks]
    everything = [case for tally in now.values() for case, _ in tally.tasks]
    return CauseReport(
        period=period,
        previous=previous,
        tasks=sum(line.tasks for line in current),
        tasks_before=sum(len(tally.tasks) for tally in before.values()),
        revenue=_revenue(everything, churn_probability),
        revenue_before=_revenue((case for tally in before.values() for case, _ in tally.tasks), churn_probability),
        recovered=sum(line.recovered for line in current),
        still_unhappy=sum(line.still_unhappy for line in current),
        by_tasks=tuple(current[:top]),
        by_revenue=tuple(
            sorted((line for line in current if line.revenue > 0), key=lambda line: (-line.revenue, -line.tasks, line.cause))[:top]
        ),
        causes=len(current),
        lines=tuple(lines),
        open_at_end=len(backlog := [case for case in cases if case.unresolved and case.opened_at < period.end]),
        overdue_at_end=sum(case.overdue(period.end) for case in backlog),
    )


def cases_from_records(records: Iterable[FollowUpTask | FollowUpUpdate | Any]) -> dict[str, Case]:
    """Every task's case from its records on FOLLOWUP_TOPIC, in topic order (a record published twice folds once)."""
    cases: dict[str, Case] = {}
    seen: set[tuple[str, str]] = set()
    for record in records:
        if isinstance(record, FollowUpTask):
            if record.task_id not in cases:
                sla = record.sla
                within = sla.acknowledge_by - record.opened_at if sla is not None and sla.acknowledge_by is not None else None
                cases[record.task_id] = opened(record, within, max(record.due_at - record.opened_at, timedelta(0)))
            continue
        case = cases.get(record.task_id)
        identity = (record.task_id, record.event_id if isinstance(record, FollowUpUpdate) else record.id)
        if case is None or identity in seen:
            continue  # its followup.opened is not on the topic (expired), or a duplicate after a crash
        seen.add(identity)
        cases[record.task_id] = fold(case, record)
    return cases


# -- showing it ----------------------------------------------------------------------------------------


def _signed(value: float, money: bool = False) -> str:
    """+3, −2, ±0; +$1,200.00 with money."""
    if value == 0 or (money and abs(value) < 0.005):
        return "±0"
    shown = f"${abs(value):,.2f}" if money else f"{abs(value):g}"
    return ("+" if value > 0 else "−") + shown


def change_text(now: float, before: float, money: bool = False) -> str:
    """Against the period before: `new` when the cause was not there, else the signed difference."""
    return "new" if before == 0 and now > 0 else _signed(now - before, money)


def money_text(value: float) -> str:
    return f"${value:,.2f}"


def rate_text(line: CauseLine | CauseReport) -> str:
    """`67% (2 of 3 answers)`, or `—` when no answer came."""
    rate = line.recovery_rate
    if rate is None:
        return "—"
    return f"{rate:g}% ({line.recovered} of {line.recovered + line.still_unhappy})"


def terminal_safe(text: str) -> str:
    """A comment on one line, with no control characters (a hostile one could rewrite the terminal with escape codes)."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in text)
    return " ".join(cleaned.split())


def plain_table(report: CauseReport) -> str:
    """The report for a terminal: both rankings as tables, then the examples."""
    lines = []
    for title, ranked in (("BY TASKS RESOLVED", report.by_tasks), ("BY REVENUE AT RISK", report.by_revenue)):
        rows = [(title, "TASKS", "CHANGE", "AT RISK/MONTH", "CHANGE", "RECOVERY RATE")]
        rows += [
            (
                line.cause,
                str(line.tasks),
                change_text(line.tasks, line.tasks_before),
                money_text(line.revenue),
                change_text(line.revenue, line.revenue_before, money=True),
                rate_text(line),
            )
            for line in ranked
        ]
        if len(rows) == 1:
            rows.append(("(none)", "", "", "", "", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            cells = [
                cell.ljust(width) if i in (0, 5) else cell.rjust(width) for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            ]
            lines.append("  ".join(cells).rstrip())
        lines.append("")
    quoted = [line for line in report.by_tasks if line.examples]
    if quoted:
        lines.append("EXAMPLES")
        width = max(len(line.cause) for line in quoted)
        for line in quoted:
            for number, example in enumerate(line.examples):
                lines.append(f"{(line.cause if number == 0 else '').ljust(width)}  “{terminal_safe(example)}”")
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def summary_line(report: CauseReport) -> str:
    rate = report.recovery_rate
    recovery = (
        "no follow-up answers yet"
        if rate is None
        else f"recovery rate {rate:g}% ({report.recovered} of {report.recovered + report.still_unhappy} answers)"
    )
    return (
        f"{report.tasks} task(s) resolved ({change_text(report.tasks, report.tasks_before)} against the period before), "
        f"{report.causes} root cause(s), {money_text(report.revenue)}/month at risk, {recovery}"
    )


# -- helpers ---------------------------------------------------------------------------------------


def _outcome_of(detail: str | None) -> Outcome | None:
    return "recovered" if detail == "recovered" else None  # no_response: no answer, not counted


def _revenue(cases: Iterable[Case], churn_probability: float) -> float:
    """The monthly value of the distinct customers of these tasks (the latest known per customer) × churn probability."""
    values: dict[str, tuple[Any, float]] = {}
    for case in cases:
        if case.monthly_value is not None:
            known = values.get(case.customer_id)
            if known is None or case.opened_at >= known[0]:
                values[case.customer_id] = (case.opened_at, case.monthly_value)
    return round(math.fsum(value for _, value in values.values()) * churn_probability, 2)


def _examples(tally: _Tally, limit: int) -> tuple[str, ...]:
    """Up to `limit` distinct comments, the most valuable customer first, then the latest task."""
    ranked = sorted(
        (case for case, _ in tally.tasks if case.comment and case.comment.strip()),
        key=lambda case: (-(case.monthly_value or 0.0), -case.opened_at.timestamp(), case.task_id),
    )
    chosen: list[str] = []
    for case in ranked:
        text = " ".join((case.comment or "").split())  # `or ""` for mypy: `ranked` keeps only cases with a comment
        text = text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"
        if text not in chosen:
            chosen.append(text)
        if len(chosen) == limit:
            break
    return tuple(chosen)
