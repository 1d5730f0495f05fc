"""The root-cause digest in the loop: once a period has ended, its digest goes to the channel, once.

Only the keeper (casework.py: the owner of TASK_ACTIONS_TOPIC's partition) calls `tick`, so
one replica at a time decides. Each period's digest has a slot, `root-causes:<period end>`,
in the `post` records of the state topic (alerting/posts.py) and is sent like any alert
(posting.py): its `posting` intent is in Kafka before the message goes out, its `posted`
record as soon as Slack answers. So a restart, or another replica taking over the keeper
(both read the state topic to its end first), finds the slot `posted` and posts nothing; a
slot left `posting` by a crash is rechecked in the channel before it is posted again.

Only the latest ended period is posted: a worker down for three periods posts one digest,
for the last of them, not three stale ones. The settings keep two periods within
ALERT_RECORD_RETENTION (config.py), so the record that a period was posted outlives the
period after it, and the cases of both periods compared are still there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from .alerting import AlertRenderer, Intent, Outcome, Posts
from .config import Settings
from .posting import Posting
from .tasks import Cases, CauseReport, Period, root_cause_report

log = logging.getLogger("worker")

SLOT_PREFIX = "root-causes:"
#: The partition a digest's record is filed under: the task actions partition, which the keeper owns, so it expires them.
PARTITION = 0
HANDLED_KEPT = 16


def digest_slot(period: Period) -> str:
    return f"{SLOT_PREFIX}{period.end.isoformat()}"


class RootCauseDigests:
    """Posts each period's root-cause digest once (config `root_cause_digest:`); does nothing without it."""

    def __init__(self, settings: Settings, cases: Cases, posting: Posting, posts: Posts,
                 renderer: Callable[[], AlertRenderer]) -> None:
        self.schedule = settings.root_cause_digest
        self.churn_probability = settings.metrics.churn_probability
        self.cases = cases
        self.posting = posting
        self.posts = posts
        self.renderer = renderer  # the current renderer (hot reload swaps it)
        self._handled: list[str] = []  # slots this process has posted, is posting or gave up: never again

    def tick(self, now: datetime) -> None:
        """About once a second, on the keeper: post the digest of the latest ended period, unless it is in Slack."""
        schedule = self.schedule
        if schedule is None:
            return
        period = schedule.last_ended(now)
        slot = digest_slot(period)
        if slot in self._handled:
            return
        self._handle(slot)
        earlier = self.posts.get(slot)
        if earlier is not None and earlier.state == "posted":
            return  # an earlier run, or the replica that kept the tasks before us
        report = root_cause_report(self.cases.by_id.values(), period, schedule.before(period), self.churn_probability,
                                   top=schedule.top)
        message = self.posting.render(f"root-cause digest {slot}", [None], {"channel": schedule.channel},
                                      lambda: self.renderer().render_root_causes(report, schedule.channel, schedule.timezone))
        if message is None:
            return  # dead-lettered with the reason (a template error); the next period tries again
        stopping = self.posting.deliveries.stopping
        intent = Intent(slot, "digest", schedule.channel, PARTITION)

        def send() -> None:
            self.posting.send(message, stopping, [], [intent], on_sent=lambda outcome: self._sent(slot, report, outcome))

        self.posting.unless_in_slack(earlier, slot, stopping, send)

    def _handle(self, slot: str) -> None:
        self._handled = [*self._handled[-(HANDLED_KEPT - 1):], slot]

    def _sent(self, slot: str, report: CauseReport, outcome: Outcome) -> None:
        top = ", ".join(f"{line.cause} ({line.tasks})" for line in report.by_tasks[:3]) or "none"
        log.info("root-cause digest %s posted to %s: %d task(s) resolved; top causes %s",
                 slot, self.schedule.channel if self.schedule else "?", report.tasks, top)
