"""What the worker has done since it started: the progress line, the exit summary, and /metrics.

The loop owns these counters and only ever adds to them, on paths it takes anyway: nothing is
counted per event that was not counted before (the per-partition counts are added per poll
batch, the per-channel ones on the alert's slow path). The /metrics collector
(observability/metrics.py) reads them when Prometheus scrapes.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("worker")


class Silence(Protocol):
    """A silence as the counters see it (alerting.Silence): which one held a message back, and why."""

    id: str
    reason: str


#: (topic, partition): kafka's TopicPartition is this named tuple.
Partition = tuple[str, int]


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
    too_old: int = 0  # matches older than ALERT_RECORD_RETENTION: no task, no alert (a replay must not alert twice)
    metric_alerts: int = 0
    rising_complaints: int = 0  # rising complaints this replica judged and posted (issue 22)
    pauses: int = 0  # times fetching paused for Slack to catch up
    reloads: int = 0
    reloads_rejected: int = 0  # edits of rules or templates refused (the old set stayed)
    silenced: int = 0  # matches whose task opened but whose alert a silence held back
    digests: int = 0  # digest messages posted (rule groups and rate-limit summaries)
    rate_limited: int = 0  # alerts folded into a rate-limit summary
    throttled: int = 0  # matches that joined an open task's thread instead of alerting anew
    replayed: int = 0  # replayed matches whose Slack message was already posted: nothing posted again
    answers: int = 0  # customers' answers after a resolution, sent to close (or reopen) their task
    joined: int = 0  # unhappy answers that joined their customer's unresolved task instead of opening another
    by_rule: Counter[str] = field(default_factory=Counter)
    polled: Counter[Partition] = field(default_factory=Counter)  # records handed to the loop, counted per poll batch
    invalid_by: Counter[Partition] = field(default_factory=Counter)  # events dead-lettered as invalid or rejected
    posted: Counter[str] = field(default_factory=Counter)  # channel (as routed) -> messages Slack accepted
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, "slack" | "template") -> dead-lettered
    rate_limited_by: Counter[str] = field(default_factory=Counter)  # channel -> alerts folded into a summary
    escalations: Counter[str] = field(default_factory=Counter)  # reason -> escalations applied (by the keeper)
    started: float = field(default_factory=time.monotonic)

    def bad_event(self, partition: Partition) -> None:
        """An event of this partition went to the DLQ as invalid (or rejected)."""
        self.invalid += 1
        self.invalid_by[partition] += 1

    def silenced_by(self, silence: Silence | None, what: str) -> bool:
        """A silence holds this message back (the task is open all the same): counted and logged."""
        if silence is not None:
            self.silenced += 1
            log.info("%s silenced by %s: %s", what, silence.id, silence.reason)
        return silence is not None

    def limited(self, channel: str) -> None:
        """An alert for this channel was folded into a rate-limit summary."""
        self.rate_limited += 1
        self.rate_limited_by[channel] += 1

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (
            f"{self.consumed} events ({self.consumed / elapsed:.0f}/s), {self.matched} matched, "
            f"{self.tasks} tasks, {self.alerts_sent} alerts sent, {self.alerts_dead} alerts dead-lettered, "
            f"{self.invalid} invalid → DLQ, {self.late} too late for metrics"
        )
