"""The root-cause digest as the template sees it, and sample cases to preview it with.

The figures are formatted here (the same words as `report root-causes` prints), so the
template only lays them out. Comments stay raw text: the renderer escapes every `{{ }}`
output, and the template puts them in plain_text elements, where `*bold*` stays as typed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..tasks import Case, CauseLine, CauseReport, Mark, Period, Sla, change_text, money_text, rate_text

ROOT_CAUSES_TEMPLATE = "root_causes.slack.j2"


def span_text(period: Period, timezone: str = "UTC") -> str:
    """`2026-03-23 09:00 – 2026-03-30 09:00 Europe/Amsterdam`: the period in the digest's time zone."""
    zone = ZoneInfo(timezone)
    start, end = period.start.astimezone(zone), period.end.astimezone(zone)
    return f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} {timezone}"


def heading_text(period: Period, timezone: str = "UTC") -> str:
    """`23 Mar – 30 Mar 2026` for periods of days, `29 Mar 2026 01:00–02:00` for shorter ones."""
    zone = ZoneInfo(timezone)
    start, end = period.start.astimezone(zone), period.end.astimezone(zone)
    if period.end - period.start < timedelta(days=1):
        return f"{start:%d %b %Y %H:%M}–{end:%H:%M}"
    return f"{start:%d %b} – {end:%d %b %Y}"


def root_cause_context(report: CauseReport, timezone: str = "UTC") -> dict[str, Any]:
    """The template's variables: the period, the totals and both rankings, each figure already in words."""

    def line(cause: CauseLine) -> dict[str, Any]:
        return {
            "cause": cause.cause,
            "tasks": cause.tasks,
            "tasks_change": change_text(cause.tasks, cause.tasks_before),
            "revenue": money_text(cause.revenue),
            "revenue_change": change_text(cause.revenue, cause.revenue_before, money=True),
            "recovery": rate_text(cause),
            "examples": list(cause.examples),
        }

    return {
        "period": {
            "start": report.period.start.astimezone(ZoneInfo(timezone)),
            "end": report.period.end.astimezone(ZoneInfo(timezone)),
            "label": span_text(report.period, timezone),
            "heading": heading_text(report.period, timezone),
        },
        "timezone": timezone,
        "tasks": report.tasks,
        "tasks_change": change_text(report.tasks, report.tasks_before),
        "revenue": money_text(report.revenue),
        "revenue_change": change_text(report.revenue, report.revenue_before, money=True),
        "recovery": rate_text(report),
        "causes": report.causes,
        "by_tasks": [line(cause) for cause in report.by_tasks],
        "by_revenue": [line(cause) for cause in report.by_revenue],
        "open_at_end": report.open_at_end,
        "overdue_at_end": report.overdue_at_end,
    }


def root_cause_payload(report: CauseReport) -> dict[str, Any]:
    """The message's metadata: what a bot reading the channel can count on."""
    return {
        "period_start": report.period.start.isoformat(),
        "period_end": report.period.end.isoformat(),
        "tasks": report.tasks,
        "open_at_end": report.open_at_end,
        "overdue_at_end": report.overdue_at_end,
        "causes": {line.cause: line.tasks for line in report.by_tasks},
        "causes_before": {line.cause: line.tasks_before for line in report.by_tasks},
    }


_SAMPLES = (  # (cause, monthly value, comment, answer after the resolution, resolved this period?)
    ("shipping-delay", 420.0, "Third order in a row that arrived a week late.", "recovered", True),
    ("shipping-delay", 95.0, "The parcel sat in a depot for 9 days & nobody told us.", "still_unhappy", True),
    ("shipping-delay", 60.0, None, None, True),
    ("billing-error", 1900.0, "We were charged twice for March.", "recovered", True),
    ("billing-error", 150.0, "Refund promised, never came.", None, False),
    ("product-defect", 310.0, "The printer head broke after two weeks.", None, True),
    ("product-defect", 80.0, "Same defect as last time.", None, False),
    ("product-defect", 75.0, None, None, False),
)


def sample_cases(period: Period) -> list[Case]:
    """A handful of resolved tasks in `period` and the one before, for `template render root_causes.slack.j2`."""
    cases = []
    before = period.start - (period.end - period.start)
    for number, (cause, value, comment, answer, now) in enumerate(_SAMPLES):
        resolved = (period.start if now else before) + timedelta(hours=2 + number)
        opened = resolved - timedelta(hours=6)
        marks = [Mark(kind="opened", at=opened), Mark(kind="resolved", at=resolved, detail=cause)]
        if answer == "recovered":
            marks.append(Mark(kind="closed", at=resolved + timedelta(days=1), detail="recovered"))
        elif answer == "still_unhappy":
            marks.append(Mark(kind="reopened", at=resolved + timedelta(days=1), detail="still_unhappy"))
        cases.append(
            Case(
                task_id=f"task-sample{number}",
                rule_id="nps-detractor",
                severity="high",
                owner="cx-team",
                customer_id=f"c-{100 + number}",
                customer_name=f"Sample customer {number}",
                monthly_value=value,
                event_id=f"e-sample{number}",
                opened_at=opened,
                sla=Sla(resolve_by=opened + timedelta(days=1)),
                due_in_s=86400,
                updated_at=marks[-1].at,
                comment=comment,
                status="resolved",
                marks=marks,
            )
        )
    return cases


def sample_period(now: datetime | None = None) -> Period:
    """The week before `now`, in whole UTC days: what a preview shows."""
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Period(end - timedelta(weeks=1), end)
