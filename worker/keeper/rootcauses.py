"""The root-cause digest in the loop: once a period has ended, its digest goes to the channel, once.

Only the keeper (keeper.py: the owner of TASK_ACTIONS_TOPIC's partition) calls `tick`, so
one replica at a time decides. Each period's digest has a slot (delivery/slots.py: the period's
end) and is sent like any alert (`Outbox.post_once`): what it owes is in Kafka before the
message goes out, its POSTED record as soon as Slack answers. So a restart, or another replica
taking over the keeper (both read the state topic to its end first), finds the slot posted and
posts nothing; a slot left owed by a crash is looked for in the channel before it is posted.

Only the latest ended period is posted: a worker down for three periods posts one digest,
for the last of them, not three stale ones. The settings keep two periods within
ALERT_RECORD_RETENTION (config.py), so the record that a period was posted outlives the
period after it, and the cases of both periods compared are still there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from ..alerting import AlertRenderer
from ..config import Settings
from ..delivery import Outbox, Outcome, Place, root_causes_slot
from ..tasks import Cases, CauseReport, root_cause_report

log = logging.getLogger("worker")

HANDLED_KEPT = 16


class RootCauseDigests:
    """Posts each period's root-cause digest once (config `root_cause_digest:`); does nothing without it."""

    def __init__(self, settings: Settings, cases: Cases, outbox: Outbox, renderer: Callable[[], AlertRenderer]) -> None:
        self.schedule = settings.root_cause_digest
        self.churn_probability = settings.metrics.churn_probability
        self.cases = cases
        self.outbox = outbox
        self.renderer = renderer  # the current renderer (hot reload swaps it)
        self._handled: list[str] = []  # periods this process has posted, is posting or gave up: never again

    def tick(self, now: datetime) -> None:
        """About once a second, on the keeper: post the digest of the latest ended period, unless it is in Slack."""
        schedule = self.schedule
        if schedule is None:
            return
        period = schedule.last_ended(now)
        end = period.end.isoformat()
        if end in self._handled:
            return
        self._handle(end)
        slot = root_causes_slot(end)
        earlier = self.outbox.posts.get(slot)
        if earlier is not None and earlier.is_settled:
            return  # an earlier run, or the replica that kept the tasks before us
        report = root_cause_report(self.cases.by_id.values(), period, schedule.before(period), self.churn_probability, top=schedule.top)
        if report.tasks == 0 and schedule.when_none_resolved == "skip":
            log.info("root-cause digest of the period ending %s: no task resolved, not posted (when_none_resolved: skip)", end)
            return
        self.outbox.post_once(
            f"root-cause digest {end}",
            [Place(slot)],
            schedule.channel,
            lambda: self.renderer().render_root_causes(report, schedule.channel, schedule.timezone),
            on_sent=lambda outcome: self._sent(end, report, outcome),
        )

    def _handle(self, end: str) -> None:
        self._handled = [*self._handled[-(HANDLED_KEPT - 1) :], end]

    def _sent(self, end: str, report: CauseReport, outcome: Outcome) -> None:
        top = ", ".join(f"{line.cause} ({line.tasks})" for line in report.by_tasks[:3]) or "none"
        log.info(
            "root-cause digest of the period ending %s posted to %s: %d task(s) resolved; top causes %s",
            end,
            self.schedule.channel if self.schedule else "?",
            report.tasks,
            top,
        )
