"""Posting a rendered message, and settling the events it stands for when Slack answers.

The last steps of acting on a match: render (or dead-letter why not), post, and then:
sent → the events are done, their offsets may be committed; refused for good → the rendered
message is dead-lettered and the events are done; abandoned (the partition moved on, the
worker stopped) → left uncommitted, for the next owner. A replayed event whose message may
already be in Slack is rechecked before anything is posted again (alerting/delivery.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from .alerting import Alert, AlertRenderer, Deliveries, Digests, Intent, Outcome, Post, Silence, TemplateRenderError, Throttle
from .checkpoint import Checkpoint, PartitionState
from .deadletter import DeadLetters
from .stats import Stats

log = logging.getLogger("worker")

Done = list[tuple[TopicPartition, ConsumerRecord]]  # the events a message stands for: their offsets wait for it


class Posting:
    def __init__(self, deliveries: Deliveries, checkpoint: Checkpoint, dead_letters: DeadLetters, throttle: Throttle,
                 stats: Stats) -> None:
        self.deliveries = deliveries
        self.checkpoint = checkpoint
        self.dead_letters = dead_letters
        self.dlq_topic = dead_letters.topic
        self.throttle = throttle
        self.stats = stats

    def render(self, what: str, records: list[ConsumerRecord | None], alert: dict[str, Any],
               render: Callable[[], Alert]) -> Alert | None:
        """Render, or dead-letter the reason (the task, if any, is already open)."""
        try:
            return render()
        except TemplateRenderError as err:
            log.error("cannot render %s: %s", what, err)
            for record in records:
                self.stats.alerts_dead += 1
                self.stats.failed[str(alert.get("channel")), "template"] += 1
                self.dead_letters.undeliverable(record, f"template error: {err}", alert)
            return None

    def replayed(self, earlier: Post, key: str | None) -> None:
        """A replay of an event whose Slack message is recorded: nothing to post (a thread starter's ts is kept)."""
        self.stats.replayed += 1
        if key is not None:
            self.throttle.posted(key, earlier.channel_id, earlier.ts)

    def recheck(self, earlier: Post, slot: str, state: PartitionState, done: Done,
                post_again: Callable[[], None], episode_key: str | None) -> None:
        """Is the message this slot intended already in Slack? Found: done. Missing: post again."""

        def settle(outcome: Outcome) -> None:
            if outcome.status == "found":
                self.replayed(earlier, None)
                if episode_key is not None and outcome.ts:
                    self.throttle.posted(episode_key, outcome.channel, outcome.ts)
                for tp, record in done:
                    self.checkpoint.done(tp, record.offset)
            elif outcome.status == "missing":
                post_again()
            # abandoned: the partition moved on; its next owner rechecks

        self.deliveries.recheck(earlier, slot, state.abandon, settle)

    def once(self, message: Alert, intent: Intent, earlier: Post | None, state: PartitionState, done: Done) -> None:
        """Post `message` into `intent`'s slot, the first event of `done` waiting for it. `earlier`: the slot's record
        left `posting` by a crash (Slack is searched before posting again); None: never tried."""
        self.checkpoint.wait_for(state, done[0][1].offset)

        def send() -> None:
            self.send(message, state.abandon, done, [intent])

        if earlier is None:
            send()
        else:
            self.recheck(earlier, intent.slot, state, done, send, None)

    def unless_in_slack(self, earlier: Post | None, slot: str, abandon: threading.Event, send: Callable[[], None]) -> None:
        """For a message tied to no event (a digest of the keeper's, a metric alert): `send` now if its slot was never
        tried; if a post was under way at a crash (`earlier` left `posting`), only once Slack is searched and lacks it."""
        if earlier is None:
            send()
        else:
            self.recheck(earlier, slot, PartitionState(abandon=abandon), [], send, None)

    def silenced(self, silence: Silence | None, what: str) -> bool:
        """A silence holds this message back (the task is open all the same): counted and logged."""
        if silence is not None:
            self.stats.silenced += 1
            log.info("%s silenced by %s: %s", what, silence.id, silence.reason)
        return silence is not None

    def send(self, alert: Alert, abandon: threading.Event, done: Done, intents: list[Intent],
             on_sent: Callable[[Outcome], None] | None = None) -> Future[Outcome]:
        """Post (after its intents, see alerting/delivery.py); once Slack answers, the events it stands for are done."""

        def settle(outcome: Outcome) -> None:
            if outcome.status == "abandoned":
                return  # stays uncommitted: redelivered after a restart or rebalance
            if outcome.status == "sent":
                self.stats.alerts_sent += 1
                self.stats.posted[alert.channel] += 1
                if on_sent is not None:
                    on_sent(outcome)
            else:
                log.error(
                    "ALERT NOT DELIVERED for event %s (rule %s, channel %s): %s; rendered alert sent to %s",
                    alert.event_id, alert.rule_id, alert.channel, outcome.reason, self.dlq_topic,
                )
                for record in [record for _, record in done] or [None]:  # a digest: one letter per answer
                    self.stats.alerts_dead += 1
                    self.stats.failed[alert.channel, "slack"] += 1
                    self.dead_letters.undeliverable(record, outcome.reason, alert.to_dict())
            for tp, record in done:
                self.checkpoint.done(tp, record.offset)

        return self.deliveries.post(alert, abandon, settle, intents)

    def post_digests(self, digests: Digests, renderer: AlertRenderer, force: bool = False) -> None:
        """Digests whose wait is over (all of them when stopping): one message, many offsets, a slot per task."""
        for digest in digests.due(force):
            done: Done = [(item.tp, item.record) for item in digest.items]
            alert = self.render(f"digest for rule {digest.rule.id}", [record for _, record in done], {"channel": digest.channel},
                                lambda: renderer.render_digest(digest))
            if alert is None:
                for tp, record in done:
                    self.checkpoint.done(tp, record.offset)
                continue
            self.stats.digests += 1
            kind = "summary" if digest.key[0] == "rate" else "digest"
            intents = [Intent(item.task_id, kind, digest.channel, item.tp.partition) for item in digest.items]
            self.send(alert, self.deliveries.stopping, done, intents)  # not tied to one partition: given up when stopping
