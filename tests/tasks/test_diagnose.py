"""The root-cause report: top causes by tasks and by revenue, changes, recovery rates and examples, from task records.

The tasks are made of the records FOLLOWUP_TOPIC carries (followup.opened, .resolved, .closed,
.reopened), folded as `report root-causes` folds them; the expected figures are worked out by
hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from worker.events import FeedbackEvent
from worker.tasks import (
    WORKER,
    FollowupAnswer,
    FollowupSpec,
    Period,
    TaskClosed,
    TaskReopened,
    TaskResolved,
    cases_from_records,
    open_task,
    plain_table,
    root_cause_report,
    summary_line,
)

WEEK = Period(datetime(2026, 11, 16, 8, tzinfo=UTC), datetime(2026, 11, 23, 8, tzinfo=UTC))
BEFORE = Period(datetime(2026, 11, 9, 8, tzinfo=UTC), WEEK.start)
HOSTILE = "<!channel> *bold* {{ 7*7 }} <@U0BOSS> & \x1b[2Jcleared"
CHURN = 0.5


class Journey:
    """One task's records, as the keeper publishes them."""

    def __init__(self, name: str, customer: str, value: float | None, comment: str | None, opened: datetime) -> None:
        event = FeedbackEvent.model_validate(
            {
                "event_id": f"e-{name}",
                "occurred_at": opened.isoformat(),
                "survey": "nps",
                "score": 2,
                "comment": comment,
                "customer": {"id": customer, "name": f"Customer {customer}", "monthly_value": value},
            }
        )
        self.task = open_task(event, "nps-detractor", ["nps-detractor"], "high", FollowupSpec(owner="cx-team"), opened)
        self.records: list[Any] = [self.task]

    def _common(self, at: datetime, what: str) -> dict[str, Any]:
        return {"task_id": self.task.task_id, "at": at, "actor": WORKER, "id": f"{self.task.task_id}-{what}-{at.isoformat()}"}

    def resolved(self, at: datetime, cause: str) -> Journey:
        self.records.append(TaskResolved(**self._common(at, "resolved"), root_cause=cause, resolution="fixed", customer_contacted=True))
        return self

    def answered(self, at: datetime, score: int) -> Journey:
        """The customer's answer to the follow-up CSAT survey: 4-5 closes the task (recovered), 1-3 reopens it."""
        answer = FollowupAnswer(event_id=f"answer-{self.task.task_id}", occurred_at=at, survey="csat", score=score, unhappy=score <= 3)
        if score <= 3:
            self.records.append(TaskReopened(**self._common(at, "reopened"), reason="still_unhappy", answer=answer))
        else:
            self.records.append(TaskClosed(**self._common(at, "closed"), outcome="recovered", answer=answer))
        return self

    def no_response(self, at: datetime) -> Journey:
        self.records.append(TaskClosed(**self._common(at, "closed"), outcome="no_response"))
        return self

    def reopened_by(self, at: datetime, reason: str) -> Journey:
        self.records.append(TaskReopened(**self._common(at, "reopened"), reason=reason))
        return self


def day(week: Period, n: float) -> datetime:
    return week.start + timedelta(days=n)


def journeys() -> list[Journey]:
    return [
        # This week: shipping-delay ×3 (c-1 twice), billing-error ×1, product-defect ×1.
        Journey("t1", "c-1", 400.0, "Late again, third time.", day(WEEK, 0))
        .resolved(day(WEEK, 1), "shipping-delay")
        .answered(day(WEEK, 2), 5),
        Journey("t2", "c-2", 100.0, HOSTILE, day(WEEK, 0)).resolved(day(WEEK, 1), "shipping-delay").answered(day(WEEK, 3), 2),
        Journey("t3", "c-1", 400.0, None, day(WEEK, 1)).resolved(day(WEEK, 2), "shipping-delay"),
        Journey("t4", "c-3", 2000.0, "Charged twice.", day(WEEK, 0)).resolved(day(WEEK, 1), "billing-error").no_response(day(WEEK, 6)),
        # Resolved last week, reopened by a person, resolved again this week: counts in both weeks.
        Journey("t5", "c-4", 50.0, "Broke again.", day(BEFORE, 1))
        .resolved(day(BEFORE, 2), "product-defect")
        .reopened_by(day(BEFORE, 4), "the customer called")
        .resolved(day(WEEK, 2), "product-defect"),
        # Last week only: billing-error ×2, onboarding ×1.
        Journey("t6", "c-5", 300.0, "Wrong invoice.", day(BEFORE, 0)).resolved(day(BEFORE, 1), "billing-error"),
        Journey("t7", "c-6", 300.0, None, day(BEFORE, 0)).resolved(day(BEFORE, 1), "billing-error"),
        Journey("t8", "c-7", None, "Could not log in.", day(BEFORE, 0)).resolved(day(BEFORE, 3), "onboarding"),
        # Neither week: resolved three weeks ago; still open; resolved exactly at the end of this week (excluded).
        Journey("t9", "c-8", 900.0, "Old.", day(BEFORE, -14)).resolved(day(BEFORE, -13), "pricing"),
        Journey("t10", "c-9", 900.0, "Open.", day(WEEK, 1)),
        Journey("t11", "c-10", 900.0, "Later.", day(WEEK, 6)).resolved(WEEK.end, "pricing"),
    ]


def report(top: int = 5):
    records = [record for journey in journeys() for record in journey.records]
    return root_cause_report(cases_from_records(records).values(), WEEK, BEFORE, CHURN, top=top)


def test_top_causes_by_tasks_with_their_change_against_the_week_before() -> None:
    result = report()
    assert [(line.cause, line.tasks, line.tasks_before) for line in result.by_tasks] == [
        ("shipping-delay", 3, 0),
        ("billing-error", 1, 2),
        ("product-defect", 1, 1),
    ]
    assert (result.tasks, result.tasks_before, result.causes) == (5, 4, 3)  # before: t5, t6, t7, t8


def test_top_causes_by_revenue_at_risk_count_each_customer_once() -> None:
    result = report()
    # billing-error: c-3 2000 × 0.5; shipping-delay: c-1 400 (two tasks, once) + c-2 100 → 500 × 0.5; product-defect: 50 × 0.5
    assert [(line.cause, line.revenue, line.revenue_before) for line in result.by_revenue] == [
        ("billing-error", 1000.0, 300.0),
        ("shipping-delay", 250.0, 0.0),
        ("product-defect", 25.0, 25.0),
    ]
    assert (result.revenue, result.revenue_before) == (1275.0, 325.0)  # c-1, c-2, c-3, c-4; before c-4, c-5, c-6 (c-7: no value)


def test_recovery_rate_counts_the_answers_to_the_follow_up_survey_only() -> None:
    result = report()
    rates = {line.cause: (line.recovered, line.still_unhappy, line.recovery_rate) for line in result.by_tasks}
    assert rates == {
        "shipping-delay": (1, 1, 50.0),  # t1 recovered, t2 still unhappy, t3 no answer yet
        "billing-error": (0, 0, None),  # no_response is not an answer
        "product-defect": (0, 0, None),
    }  # reopened by a person, not by an answer
    assert (result.recovered, result.still_unhappy, result.recovery_rate) == (1, 1, 50.0)


def test_examples_are_comments_of_the_most_valuable_customers_first() -> None:
    result = report()
    examples = {line.cause: line.examples for line in result.by_tasks}
    assert examples["shipping-delay"] == ("Late again, third time.", HOSTILE)  # c-1 ($400) before c-2 ($100); t3 has none
    assert examples["billing-error"] == ("Charged twice.",)


def test_top_limits_each_ranking_and_a_record_published_twice_counts_once() -> None:
    assert [line.cause for line in report(top=2).by_tasks] == ["shipping-delay", "billing-error"]
    records = [record for journey in journeys() for record in journey.records]
    twice = records + [r for r in records if r.type == "followup.resolved"] + records[:3]  # a crash re-published them
    again = root_cause_report(cases_from_records(twice).values(), WEEK, BEFORE, CHURN)
    assert again.by_tasks == report().by_tasks


def test_the_plain_table_shows_changes_rates_and_examples_without_terminal_control_codes() -> None:
    text = plain_table(report())
    lines = text.splitlines()
    assert lines[0].split() == ["BY", "TASKS", "RESOLVED", "TASKS", "CHANGE", "AT", "RISK/MONTH", "CHANGE", "RECOVERY", "RATE"]
    assert lines[1].split() == ["shipping-delay", "3", "new", "$250.00", "new", "50%", "(1", "of", "2)"]
    assert lines[2].split() == ["billing-error", "1", "−1", "$1,000.00", "+$700.00", "—"]
    assert lines[3].split() == ["product-defect", "1", "±0", "$25.00", "±0", "—"]
    assert "\x1b" not in text and "<!channel> *bold* {{ 7*7 }} <@U0BOSS> & [2Jcleared" in text  # shown as typed, escape code gone
    assert summary_line(report()) == (
        "5 task(s) resolved (+1 against the period before), 3 root cause(s), $1,275.00/month at risk, recovery rate 50% (1 of 2 answers)"
    )


def test_a_period_without_resolutions_is_an_empty_report_not_an_error() -> None:
    empty = root_cause_report([], WEEK, BEFORE, CHURN)
    assert (empty.tasks, empty.by_tasks, empty.by_revenue, empty.recovery_rate) == (0, (), (), None)
    assert "(none)" in plain_table(empty)
