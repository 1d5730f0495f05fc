"""When the root-cause digest goes out: `root_cause_digest:` in the config file, and its periods.

    root_cause_digest: {channel: "#cx-leads", every: 1w, at: "mon 09:00", timezone: Europe/Amsterdam}

A period is [start, end); the digest for a period is posted once it has ended. Without `at`,
periods are counted from the Unix epoch (1970-01-01 00:00 UTC), so `every: 1h` ends on the
hour and `every: 1d` at midnight UTC. With `at` ("mon 09:00" or "09:00"), they are anchored
there, in `timezone`: when `every` is a whole number of days, boundaries are that wall-clock
time (09:00 stays 09:00 across daylight saving, so a week may be 167 or 169 hours long);
shorter or uneven periods are fixed lengths of time from the anchor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..notation import Duration, format_duration
from .policy import DAYS, known_zone

_AT = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun)\s+)?(\d{1,2}):(\d{2})$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Period:
    """[start, end), in UTC."""

    start: datetime
    end: datetime

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


class RootCauseDigest(BaseModel):
    """The root-cause digest: the top causes of the tasks resolved in each period, posted to `channel` once it ends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(min_length=1, description="Where it is posted: #name or a channel id.")
    every: Duration = Field(timedelta(weeks=1), description="The length of a period, e.g. 1w, 1d, 1h.")
    at: str | None = Field(None, description='Where periods start: "mon 09:00" or "09:00", in `timezone`; none: the Unix epoch.')
    timezone: str = Field("UTC", description="The time zone of `at` and of the dates the digest shows.")
    top: int = Field(5, ge=1, le=10, description="How many causes each ranking lists.")
    when_none_resolved: Literal["backlog", "skip"] = Field(
        "backlog",
        description="A period in which no task was resolved: `backlog` posts what matters then (tasks still open, "
        "overdue), `skip` posts nothing.",
    )

    @field_validator("channel")
    @classmethod
    def _channel(cls, channel: str) -> str:
        if not channel.strip():
            raise ValueError("give a channel, e.g. #cx-leads")
        return channel.strip()

    @field_validator("every")
    @classmethod
    def _positive(cls, every: timedelta) -> timedelta:
        if every <= timedelta(0):
            raise ValueError("every must be a positive duration, like 1w, 1d or 1h")
        return every

    @field_validator("at")
    @classmethod
    def _at(cls, at: str | None) -> str | None:
        if at is None:
            return at
        match = _AT.match(at.strip().lower())
        if not match or int(match[2]) > 23 or int(match[3]) > 59:
            raise ValueError('at must look like "mon 09:00" or "09:00" (a weekday and/or a 24-hour time)')
        return f"{match[1] + ' ' if match[1] else ''}{int(match[2]):02d}:{match[3]}"

    _zone = field_validator("timezone")(lambda cls, name: known_zone(name))

    @model_validator(mode="after")
    def _weekday_needs_weeks(self) -> RootCauseDigest:
        if self.at is not None and " " in self.at and self.every % timedelta(weeks=1):
            raise ValueError(
                f"at {self.at!r} names a weekday, so every must be whole weeks (1w, 2w), "
                f"not {format_duration(self.every)}; or give only a time, like {self.at.split()[1]!r}"
            )
        return self

    # -- periods --------------------------------------------------------------------------------------

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _anchor(self) -> tuple[date, time] | None:
        """The local day and time periods are counted from: the first such weekday from 1970-01-01."""
        if self.at is None:
            return None
        *weekday, clock = self.at.split()
        day = date(1970, 1, 1)
        if weekday:
            day += timedelta(days=(DAYS.index(weekday[0]) - day.weekday()) % 7)
        hours, minutes = clock.split(":")
        return day, time(int(hours), int(minutes))

    @cached_property
    def _wall_clock(self) -> bool:
        return self._anchor is not None and self.every % _DAY == timedelta(0)

    def _boundary(self, index: int) -> datetime:
        """The start of period number `index` (0: the one that starts at the anchor), in UTC."""
        if self._anchor is None:
            return _EPOCH + index * self.every
        day, clock = self._anchor
        if self._wall_clock:  # the same local time every n days, whatever the UTC offset that day
            return datetime.combine(day + index * self.every, clock, self.zone).astimezone(UTC)
        return datetime.combine(day, clock, self.zone).astimezone(UTC) + index * self.every

    def period_at(self, moment: datetime) -> Period:
        """The period that contains `moment` (start <= moment < end)."""
        moment = moment.astimezone(UTC)
        index = (moment - self._boundary(0)) // self.every  # exact for fixed lengths; off by one at most on the wall clock
        while self._boundary(index) > moment:
            index -= 1
        while self._boundary(index + 1) <= moment:
            index += 1
        return Period(self._boundary(index), self._boundary(index + 1))

    def before(self, period: Period) -> Period:
        """The period just before `period`."""
        return self.period_at(period.start - timedelta(microseconds=1))

    def last_ended(self, now: datetime) -> Period:
        """The latest period that has ended by `now`: the one whose digest is due."""
        return self.before(self.period_at(now))

    def describe(self) -> str:
        """`every 1w from mon 09:00 Europe/Amsterdam`, for logs and the README."""
        start = f"from {self.at} {self.timezone}" if self.at else "from the Unix epoch (UTC)"
        return f"every {format_duration(self.every)} {start}"
