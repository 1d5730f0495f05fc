"""When the root-cause digest goes out: the periods of `root_cause_digest:`, and the config's errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from worker.config import ConfigError, load_settings
from worker.tasks import Period, RootCauseDigest

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_hourly_periods_are_counted_from_the_epoch_so_they_end_on_the_hour() -> None:
    hourly = RootCauseDigest(channel="#cx-leads", every="1h")
    assert hourly.period_at(utc("2026-03-29T10:37:12")) == Period(utc("2026-03-29T10:00"), utc("2026-03-29T11:00"))
    assert hourly.period_at(utc("2026-03-29T11:00")) == Period(utc("2026-03-29T11:00"), utc("2026-03-29T12:00"))  # end excluded
    assert hourly.last_ended(utc("2026-03-29T10:37:12")) == Period(utc("2026-03-29T09:00"), utc("2026-03-29T10:00"))
    ninety = RootCauseDigest(channel="#cx-leads", every="90m")  # from 1970-01-01 00:00 UTC: 00:00, 01:30, 03:00, ...
    assert ninety.period_at(utc("2026-03-29T02:00")).start == utc("2026-03-29T01:30")


def test_without_at_days_start_at_midnight_utc_whatever_the_time_zone() -> None:
    daily = RootCauseDigest(channel="#cx-leads", every="1d", timezone="Europe/Amsterdam")
    assert daily.period_at(utc("2026-07-01T23:30")) == Period(utc("2026-07-01T00:00"), utc("2026-07-02T00:00"))


def test_weekly_on_monday_0900_stays_at_0900_local_across_the_change_to_summer_time() -> None:
    weekly = RootCauseDigest(channel="#cx-leads", every="1w", at="mon 09:00", timezone="Europe/Amsterdam")
    # Clocks went forward on Sunday 2026-03-29: 09:00 was 08:00 UTC the Monday before, 07:00 UTC after.
    this_week = weekly.period_at(utc("2026-04-01T12:00"))
    assert this_week == Period(utc("2026-03-30T07:00"), utc("2026-04-06T07:00"))
    last_week = weekly.before(this_week)
    assert last_week == Period(utc("2026-03-23T08:00"), utc("2026-03-30T07:00"))
    assert last_week.end - last_week.start == timedelta(hours=167)  # the week with the lost hour
    for moment in (last_week.start, last_week.end, this_week.end):
        local = moment.astimezone(AMSTERDAM)
        assert (local.strftime("%a"), local.hour, local.minute) == ("Mon", 9, 0)
    # The digest for last week is due from Monday 09:00 local, not a minute before.
    assert weekly.last_ended(utc("2026-03-30T06:59:59")) == weekly.before(last_week)
    assert weekly.last_ended(utc("2026-03-30T07:00")) == last_week


def test_and_back_to_winter_time_a_week_is_169_hours() -> None:
    weekly = RootCauseDigest(channel="#cx-leads", every="1w", at="mon 09:00", timezone="Europe/Amsterdam")
    week = weekly.period_at(utc("2026-10-25T12:00"))  # clocks went back that Sunday
    assert week == Period(utc("2026-10-19T07:00"), utc("2026-10-26T08:00"))
    assert week.end - week.start == timedelta(hours=169)


def test_at_without_a_weekday_anchors_every_day_at_that_local_time() -> None:
    daily = RootCauseDigest(channel="#cx-leads", every="1d", at="9:00", timezone="America/New_York")
    assert daily.at == "09:00"
    # New York moved to summer time on Sunday 2026-03-08.
    assert daily.period_at(utc("2026-03-08T12:00")) == Period(utc("2026-03-07T14:00"), utc("2026-03-08T13:00"))
    assert daily.period_at(utc("2026-03-08T13:00")) == Period(utc("2026-03-08T13:00"), utc("2026-03-09T13:00"))
    fortnight = RootCauseDigest(channel="#cx-leads", every="2w", at="fri 17:00")
    period = fortnight.period_at(utc("2026-11-30T10:00"))
    assert period.end - period.start == timedelta(weeks=2) and period.start.strftime("%a %H:%M") == "Fri 17:00"


def test_a_period_shorter_than_a_day_with_at_is_phased_from_it() -> None:
    four_times_a_day = RootCauseDigest(channel="#cx-leads", every="6h", at="03:00")
    assert four_times_a_day.period_at(utc("2026-11-30T10:00")) == Period(utc("2026-11-30T09:00"), utc("2026-11-30T15:00"))


def config_error(tmp_path: Path, block: str, environ: dict[str, str] | None = None) -> str:
    path = tmp_path / "worker.yaml"
    path.write_text(f"root_causes: [shipping-delay, other]\nroot_cause_digest: {block}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ=environ or {})
    return str(caught.value)


def test_bad_digest_settings_are_refused_with_the_file_line_and_what_is_wrong(tmp_path: Path) -> None:
    zone = config_error(tmp_path, '{channel: "#cx-leads", timezone: Mars/Olympus}')
    assert "worker.yaml:2" in zone and "timezone" in zone and "unknown time zone 'Mars/Olympus'" in zone
    at = config_error(tmp_path, '{channel: "#cx-leads", at: "monday 9am"}')
    assert "worker.yaml:2" in at and 'at must look like "mon 09:00" or "09:00"' in at
    assert "24-hour" in config_error(tmp_path, '{channel: "#cx-leads", at: "25:00"}')
    every = config_error(tmp_path, '{channel: "#cx-leads", every: 0s}')
    assert "every" in every and "bad duration '0s'" in every
    assert "every" in config_error(tmp_path, '{channel: "#cx-leads", every: -1h}')
    weekday = config_error(tmp_path, '{channel: "#cx-leads", every: 1d, at: "mon 09:00"}')
    assert "names a weekday, so every must be whole weeks" in weekday
    assert "channel" in config_error(tmp_path, "{every: 1w}")
    assert "Field required" in config_error(tmp_path, "{every: 1w}")


def test_two_periods_must_fit_in_the_retention_of_cases_and_post_records(tmp_path: Path) -> None:
    message = config_error(tmp_path, '{channel: "#cx-leads", every: 30d}')
    assert "worker.yaml:2" in message and "ALERT_RECORD_RETENTION" in message and "at least 60d" in message
    path = tmp_path / "worker.yaml"
    settings = load_settings(path, environ={"ALERT_RECORD_RETENTION": "60d"})
    assert settings.root_cause_digest.every == timedelta(days=30)


def test_the_digest_is_a_config_file_setting_like_the_sla_calendar(tmp_path: Path) -> None:
    path = tmp_path / "worker.yaml"
    path.write_text('root_cause_digest: {channel: "#cx-leads", every: 1w, at: "mon 09:00", timezone: Europe/Amsterdam}\n')
    digest = load_settings(path, environ={}).root_cause_digest
    assert (digest.channel, digest.every, digest.at, digest.timezone, digest.top) == (
        "#cx-leads",
        timedelta(weeks=1),
        "mon 09:00",
        "Europe/Amsterdam",
        5,
    )
    assert load_settings(None, environ={"ROOT_CAUSE_DIGEST": "x"}).root_cause_digest is None  # not an environment variable
