"""What the worker has done since it started: the progress line and the exit summary."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Stats:
    """What the worker has done since it started; logged periodically and at exit."""

    consumed: int = 0
    invalid: int = 0
    matched: int = 0
    tasks: int = 0
    alerts_sent: int = 0
    alerts_dead: int = 0
    late: int = 0
    metric_alerts: int = 0
    pauses: int = 0  # times fetching paused for Slack to catch up
    reloads: int = 0
    silenced: int = 0  # matches whose task opened but whose alert a silence held back
    digests: int = 0  # digest messages posted (rule groups and rate-limit summaries)
    rate_limited: int = 0  # alerts folded into a rate-limit summary
    throttled: int = 0  # matches that joined an open task's thread instead of alerting anew
    replayed: int = 0  # replayed matches whose Slack message was already posted: nothing posted again
    answers: int = 0  # customers' answers after a resolution, sent to close (or reopen) their task
    joined: int = 0  # unhappy answers that joined their customer's unresolved task instead of opening another
    by_rule: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.consumed} events ({self.consumed / elapsed:.0f}/s), {self.matched} matched, "
            f"{self.tasks} tasks, {self.alerts_sent} alerts sent, {self.alerts_dead} alerts dead-lettered, "
            f"{self.invalid} invalid → DLQ, {self.late} too late for metrics"
        )
