"""How tasks are run, from the config file: owner pools, the root-cause taxonomy, the SLA calendar.

    owners:
      cx-oncall: {members: [U01ABC, U02DEF, U03GHI], strategy: round_robin}   # or least_open
    root_causes: [shipping-delay, billing-error, product-defect, ...]
    sla_calendar: {timezone: Europe/Amsterdam, days: [mon, tue, wed, thu, fri], hours: "09:00-17:30",
                   holidays: [2026-12-25], holiday_country: NL}

With a calendar, `due_in` and `acknowledge_within` count business time: a detractor at 17:20 on
a Friday with `acknowledge_within: 1h` is due at 09:50 on Monday. Without one, wall-clock time.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
#: An SLA calendar's days when none are given.
WORKDAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri")
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_ROOT_CAUSES = (
    "shipping-delay",
    "billing-error",
    "product-defect",
    "service-outage",
    "support-experience",
    "pricing",
    "onboarding",
    "missing-feature",
    "communication",
    "other",
)
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,20}$")
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
MAX_DAYS = 3 * 366  # a calendar that is never open must not loop forever


def known_zone(name: str) -> str:
    """A time zone name the system knows, or a ValueError that says what one looks like."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (e.g. Europe/Amsterdam, America/New_York, UTC)") from None
    return name


class OwnerPool(BaseModel):
    """An owner that is a rota: each task goes to one member."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    members: list[str] = Field(min_length=1, description="Slack user ids (U...), mentioned in the alert.")
    strategy: Literal["round_robin", "least_open"] = Field(
        "round_robin", description="round_robin: in turn; least_open: whoever has the fewest unresolved tasks."
    )

    @field_validator("members")
    @classmethod
    def _slack_users(cls, members: list[str]) -> list[str]:
        for member in members:
            if not _SLACK_USER.match(member):
                raise ValueError(f"{member!r} is not a Slack user id (U... or W..., as in the user's profile)")
        if len(set(members)) != len(members):
            raise ValueError("a member is listed twice")
        return members


class SlaCalendar(BaseModel):
    """Business hours: SLA timers only run while the team is working."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    days: list[Day] = Field(default_factory=lambda: list(WORKDAYS), min_length=1)
    hours: str = Field("09:00-17:00", description="Opening hours, e.g. 09:00-17:30.")
    holidays: list[date] = Field(default_factory=list, description="Closed all day, e.g. 2026-12-25.")
    holiday_country: str | None = Field(None, description="Also closed on this country's public holidays (ISO code, e.g. NL).")

    _known_zone = field_validator("timezone")(lambda cls, name: known_zone(name))

    @field_validator("hours")
    @classmethod
    def _opening_hours(cls, hours: str) -> str:
        match = _HOURS.match(hours.strip())
        if not match or not (0 <= int(match[1]) < 24 and 0 <= int(match[2]) < 60 and 0 <= int(match[3]) <= 24 and 0 <= int(match[4]) < 60):
            raise ValueError(f"hours must look like 09:00-17:30, got {hours!r}")
        if (int(match[1]), int(match[2])) >= (int(match[3]), int(match[4])):
            raise ValueError(f"hours {hours!r} close before they open")
        return hours.strip()

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, country: str | None) -> str | None:
        if country is not None:
            import holidays

            if country.upper() not in holidays.list_supported_countries():
                raise ValueError(f"no public holidays known for {country!r} (use an ISO code such as NL, DE, US)")
            return country.upper()
        return country

    @cached_property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _open_close(self) -> tuple[time, time]:
        match = _HOURS.match(self.hours)
        assert match is not None
        close = time(23, 59, 59, 999999) if int(match[3]) == 24 else time(int(match[3]), int(match[4]))
        return time(int(match[1]), int(match[2])), close

    @cached_property
    def _public(self) -> Any:
        import holidays  # a well-kept library of public holidays: no hand-kept lists of dates

        return holidays.country_holidays(self.holiday_country) if self.holiday_country else {}

    def is_working_day(self, day: date) -> bool:
        return DAYS[day.weekday()] in self.days and day not in self.holidays and day not in self._public

    def _spans(self, start: datetime) -> Any:
        """The working periods from `start` on, in UTC, as (begin, end) pairs."""
        local = start.astimezone(self._zone)
        opens, closes = self._open_close
        day = local.date()
        for _ in range(MAX_DAYS):
            if self.is_working_day(day):
                begin = datetime.combine(day, opens, self._zone).astimezone(UTC)
                end = datetime.combine(day, closes, self._zone).astimezone(UTC)
                begin = max(begin, start.astimezone(UTC))
                if begin < end:
                    yield begin, end
            day += timedelta(days=1)
        raise ValueError(f"the SLA calendar has no working time within {MAX_DAYS} days")

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """`start` + `duration` of working time, in UTC."""
        left = duration
        for begin, end in self._spans(start):
            if left <= end - begin:
                return begin + left
            left -= end - begin
        raise AssertionError("unreachable")  # _spans raises first

    def between(self, start: datetime, end: datetime) -> timedelta:
        """The working time between two moments (for time-to-acknowledge in business time)."""
        total = timedelta(0)
        if end <= start:
            return total
        for begin, close in self._spans(start):
            if begin >= end:
                break
            total += min(close, end) - begin
        return total


class TaskPolicy(BaseModel):
    """The task settings of the config file, together, as the keeper and the CLI use them."""

    model_config = ConfigDict(frozen=True)

    owners: dict[str, OwnerPool] = Field(default_factory=dict)
    root_causes: list[str] = Field(default_factory=lambda: list(DEFAULT_ROOT_CAUSES))
    sla_calendar: SlaCalendar | None = None

    def sla(self, opened: datetime, acknowledge_within: timedelta | None, due_in: timedelta) -> tuple[datetime | None, datetime]:
        """(acknowledge_by, resolve_by) for a task opened at `opened`: business time with a calendar."""
        if self.sla_calendar is None:
            return (opened + acknowledge_within if acknowledge_within else None), opened + due_in
        calendar = self.sla_calendar
        return (calendar.add(opened, acknowledge_within) if acknowledge_within else None), calendar.add(opened, due_in)


def check_root_causes(causes: list[str]) -> list[str]:
    """The taxonomy: a non-empty list of distinct slugs (they are keys in metrics and in Slack menus)."""
    if not causes:
        raise ValueError("give at least one root cause")
    for cause in causes:
        if not isinstance(cause, str) or not _SLUG.match(cause):
            raise ValueError(f"root cause {cause!r} must be a short slug: lower-case letters, digits and '-' (e.g. shipping-delay)")
    if len(set(causes)) != len(causes):
        raise ValueError("a root cause is listed twice")
    if len(causes) > 100:
        raise ValueError("at most 100 root causes (Slack menus show 100 options)")
    return causes
