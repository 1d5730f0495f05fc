"""Metric-rule alerts, each posted once, lost to no crash: the `fire` of metrics.MetricWatch.

A firing is recorded in the state topic with the id that names its alert's slot (delivery/), and
the alert goes out like any other (`Outbox.post_once`): its OWED record is written after the
firing record and before the post, its POSTED record as soon as Slack answers. A crash between the firing
record and the post left the rule firing with nothing in Slack; so while the rule still fires,
each snapshot asks again: a slot posted, or on its way from this process, is done; one left
owed is looked for in the channel first; one with no record, or whose post was given up
(held when the worker lost partitions), was never posted: it is now.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from ..alerting import AlertRenderer, Silences
from ..delivery import Outbox, Outcome, Place, metric_slot
from ..metrics import MetricRule, MetricSnapshot
from ..rules import NO_CHANNEL
from ..stream import Stats

log = logging.getLogger("worker")

SLOTS_KEPT = 1024


@dataclass
class MetricAlerts:
    outbox: Outbox
    silences: Silences
    renderer: Callable[[], AlertRenderer]  # the current renderer (hot reload swaps it)
    default_channel: str | None
    stats: Stats
    clock: Callable[[], datetime]
    #: firing -> its post in this process; None: being looked for in the channel, or not to be posted (silenced,
    #: dead-lettered). Insertion-ordered, bounded.
    _posts: dict[str, Future[Outcome] | None] = field(default_factory=dict, init=False)

    def fire(self, rule: MetricRule, snapshot: MetricSnapshot, firing: str, again: bool) -> bool:
        """Post the alert of this firing (silence → render → send); False if nothing is posted (silenced, or
        dead-lettered with the reason). `again`: the rule still fires; post only if its alert never made it."""
        slot = metric_slot(firing)
        if again and not self._missing(firing):
            return True
        self._keep(firing, None)
        if self.stats.silenced_by(self.silences.holding_metric(rule.id, snapshot.dimension, self.clock()), f"metric alert {rule.id}"):
            return False
        channel = rule.channel or self.default_channel or NO_CHANNEL
        if again:
            log.warning(
                "metric rule %s still fires and its alert may not be in Slack (a restart, or its post given up): making sure", rule.id
            )
        else:
            self.stats.metric_alerts += 1
            log.warning("metric rule %s fired: %s (window %s)", rule.id, rule.condition.describe(), snapshot.window.start)
        future = self.outbox.post_once(
            f"metric alert for rule {rule.id}", [Place(slot)], channel, lambda: self.renderer().render_metric(rule, channel, snapshot)
        )
        if future is None and not again:
            return False  # a new slot with nothing to post: the template failed, dead-lettered with the reason
        self._keep(firing, future)
        return True

    def _missing(self, firing: str) -> bool:
        """Still firing: is the alert of this firing neither in Slack nor on its way there?"""
        post = self.outbox.posts.get(metric_slot(firing))
        if post is not None and post.is_settled:
            return False
        if firing not in self._posts:
            return True  # a restart, or another replica took the series over: only the records tell
        future = self._posts[firing]  # a post held when the worker lost partitions is given up: "abandoned"
        return future is not None and future.done() and future.result().status == "abandoned"

    def _keep(self, firing: str, post: Future[Outcome] | None) -> None:
        self._posts[firing] = post
        if len(self._posts) > SLOTS_KEPT:
            del self._posts[next(iter(self._posts))]
