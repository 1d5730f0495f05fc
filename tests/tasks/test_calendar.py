"""Business hours: SLA timers run only while the team works (config `sla_calendar:`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from worker.config import ConfigError, load_settings
from worker.tasks import SlaCalendar, TaskPolicy

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
CALENDAR = SlaCalendar(
    timezone="Europe/Amsterdam",
    days=["mon", "tue", "wed", "thu", "fri"],
    hours="09:00-17:30",
    holidays=[date(2026, 12, 25)],
    holiday_country="NL",
)


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=AMSTERDAM)


def test_a_detractor_at_1720_on_friday_with_an_hour_to_acknowledge_is_due_at_0950_on_monday() -> None:
    friday = local(2026, 11, 27, 17, 20)
    assert CALENDAR.add(friday, timedelta(hours=1)) == local(2026, 11, 30, 9, 50)
    assert CALENDAR.between(friday, local(2026, 11, 30, 9, 50)) == timedelta(hours=1)


def test_holidays_listed_and_the_countrys_public_ones_are_skipped() -> None:
    # Thursday 24 December 17:00, 2 h: 30 min that day; the 25th is listed, the 26th is Saturday (and NL's
    # Second Day of Christmas), the 27th Sunday: 1 h 30 left on Monday the 28th → 10:30.
    assert CALENDAR.add(local(2026, 12, 24, 17, 0), timedelta(hours=2)) == local(2026, 12, 28, 10, 30)
    # King's Day (27 April, a Monday in 2026) is a Dutch public holiday, not listed in the config.
    assert CALENDAR.add(local(2026, 4, 24, 17, 0), timedelta(hours=1)) == local(2026, 4, 28, 9, 30)
    assert not CALENDAR.is_working_day(date(2026, 4, 27))


def test_outside_hours_the_clock_starts_at_the_next_opening_and_results_are_utc() -> None:
    due = CALENDAR.add(local(2026, 11, 30, 6, 0), timedelta(minutes=45))  # Monday before opening
    assert due == local(2026, 11, 30, 9, 45) and due.tzinfo == UTC


def test_without_a_calendar_timers_run_on_the_wall_clock() -> None:
    opened = datetime(2026, 11, 27, 16, 20, tzinfo=UTC)  # Friday 17:20 in Amsterdam
    assert TaskPolicy().sla(opened, timedelta(hours=1), timedelta(days=1)) == (opened + timedelta(hours=1), opened + timedelta(days=1))
    with_calendar = TaskPolicy(sla_calendar=CALENDAR).sla(opened, timedelta(hours=1), timedelta(hours=4))
    assert with_calendar == (local(2026, 11, 30, 9, 50), local(2026, 11, 30, 12, 50))


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("sla_calendar: {timezone: Mars/Olympus}", "unknown time zone 'Mars/Olympus'"),
        ("sla_calendar: {hours: '9-5'}", "hours must look like 09:00-17:30"),
        ("sla_calendar: {hours: '17:00-09:00'}", "close before they open"),
        ("sla_calendar: {holiday_country: XX}", "no public holidays known for 'XX'"),
        ("root_causes: [Shipping Delay]", "root cause 'Shipping Delay' must be a short slug"),
        ("root_causes: [a, a]", "a root cause is listed twice"),
        ("root_causes: []", "give at least one root cause"),
        ("owners: {cx-oncall: {members: [alice]}}", "'alice' is not a Slack user id"),
    ],
)
def test_a_malformed_task_setting_is_refused_with_its_file_and_line(tmp_path: Path, block: str, problem: str) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("feedback_topic: x\n" + block + "\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={})
    assert f"{config}:2" in str(refused.value) and problem in str(refused.value)
