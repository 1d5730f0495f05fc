"""Metric-rule alerts, each posted once, lost to no crash: the `fire` of metrics.MetricWatch.

A firing is recorded in the state topic with the slot of its alert (alerting/posts.py), and the
alert goes out like any other: its `posting` intent is written after the firing record and
before the post, its `posted` record as soon as Slack answers. A crash between the firing
record and the post left the rule firing with nothing in Slack; so while the rule still fires,
each snapshot asks again: a slot `posted`, or on its way from this process, is done; one left
`posting` is looked for in the channel first; one with no record, or whose post was given up
(held when the worker lost partitions), was never posted: it is now.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime

from .alerting import AlertRenderer, Intent, Outcome, Post, Posts, Silences
from .metrics import MetricRule, MetricSnapshot
from .posting import Posting
from .rules import NO_CHANNEL
from .stats import Stats

log = logging.getLogger("worker")

#: The partition a metric alert's records are filed under (for their expiry), as for root-cause digests.
PARTITION = 0
SLOTS_KEPT = 1024


@dataclass
class MetricAlerts:
    posting: Posting
    posts: Posts
    silences: Silences
    renderer: Callable[[], AlertRenderer]  # the current renderer (hot reload swaps it)
    default_channel: str | None
    stats: Stats
    abandon: threading.Event  # tied to no partition: given up when the worker stops
    clock: Callable[[], datetime]
    #: slot -> its post in this process; None: being looked for in the channel, or not to be posted (silenced,
    #: dead-lettered). Insertion-ordered, bounded.
    _slots: dict[str, Future[Outcome] | None] = field(default_factory=dict, init=False)

    def fire(self, rule: MetricRule, snapshot: MetricSnapshot, slot: str, again: bool) -> bool:
        """Post the rule's alert into `slot` (silence → render → send); False if nothing is posted (silenced, or
        dead-lettered with the reason). `again`: the rule still fires; post only if its alert never made it."""
        earlier = self.posts.get(slot)
        if again and not self._missing(slot, earlier):
            return True
        self._keep(slot, None)
        if self.posting.silenced(self.silences.holding_metric(rule.id, snapshot.dimension, self.clock()), f"metric alert {rule.id}"):
            return False
        channel = rule.channel or self.default_channel or NO_CHANNEL
        if again:
            log.warning("metric rule %s still fires and its alert may not be in Slack (a restart, or its post given up): "
                        "making sure", rule.id)
        else:
            self.stats.metric_alerts += 1
            log.warning("metric rule %s fired: %s (window %s)", rule.id, rule.condition.describe(), snapshot.window.start)
        alert = self.posting.render(f"metric alert for rule {rule.id}", [None], {"channel": channel, "template": rule.template},
                                    lambda: self.renderer().render_metric(rule, channel, snapshot))
        if alert is None:
            return False
        intent = Intent(slot, "alert", channel, PARTITION)

        def send() -> None:
            self._keep(slot, self.posting.send(alert, self.abandon, [], [intent]))

        self.posting.unless_in_slack(earlier, slot, self.abandon, send)
        return True

    def _missing(self, slot: str, earlier: Post | None) -> bool:
        """Still firing: is the alert of `slot` neither in Slack nor on its way there?"""
        if earlier is not None and earlier.state == "posted":
            return False
        if slot not in self._slots:
            return True  # a restart, or another replica took the series over: only the records tell
        post = self._slots[slot]  # a post held when the worker lost partitions is given up: "abandoned"
        return post is not None and post.done() and post.result().status == "abandoned"

    def _keep(self, slot: str, post: Future[Outcome] | None) -> None:
        self._slots[slot] = post
        if len(self._slots) > SLOTS_KEPT:
            del self._slots[next(iter(self._slots))]
