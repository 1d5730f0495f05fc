"""The worker loop. The whole flow is here: consume → validate → evaluate → act → commit.

One thread owns the consumer, the producer and the checkpoint. Slack posts run on the
sink's threads; their outcomes come back through a queue (alerting/delivery.py) and are
applied here, so no Kafka client is ever touched from two threads.

Acting on a match is a short sequence of steps, each owned by a subpackage:
    throttle (alerting/throttle.py) → route (rules/routing.py) → open task (tasks/)
    → silence (alerting/silences.py) → batch (alerting/digest.py) → render (alerting/render.py)
    → send (posting.py: post once, see alerting/delivery.py; then settle the events)
This module says what happens, in order; the step says how.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from .alerting import (
    REPLY_TEMPLATE,
    AlertRenderer,
    Deliveries,
    Digests,
    Episode,
    Intent,
    Item,
    Posts,
    Silences,
    Sink,
    Throttle,
    new_card,
    notice_alert,
    reply_slot,
    with_card,
)
from .casework import Casework
from .interactions import SlackLink
from .checkpoint import Backpressure, Checkpoint, PartitionState
from .config import Settings
from .deadletter import DeadLetters
from .events import FUTURE_LIMIT_S, FeedbackEvent, epoch_seconds, event_data, is_unhappy
from .metricalerts import MetricAlerts
from .metrics import Metering, MetricWatch
from .posting import Done, Posting
from .rebalance import Membership, Rebalance
from .reload import Reloader
from .rules import Match, Router, RuleSet
from .state import StateView
from .stats import Stats
from .tasks import Cases, FollowUpTask, open_task

log = logging.getLogger("worker")

_LOUD_COUNTS = frozenset(10**n for n in range(10))


class Worker:
    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        renderer: AlertRenderer,
        sink: Sink,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        view: StateView,
        throttle: Throttle,
        silences: Silences,
        posts: Posts,
        cases: Cases,
        router: Router,
        metering: Metering | None = None,
        reloader: Reloader | None = None,
        link: SlackLink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.renderer = renderer
        self.consumer = consumer
        self.clock = clock
        self.checkpoint = Checkpoint(consumer, producer, settings.commit_interval_seconds)
        self.view = view  # the worker state topic, read continuously (state.py)
        self.throttle = throttle
        self.silences = silences
        self.posts = posts  # what is in Slack already, per task: every alert goes out once
        self.router = router
        self.metering = metering
        self.reloader = reloader
        self.digests = Digests(settings.channel_rate_limit_per_minute)
        # Posts tied to no one partition (metric alerts, digests, notices) give up when the worker stops.
        self._unbound_abandon = threading.Event()
        self.membership = Membership(consumer)
        self.deliveries = Deliveries(sink, posts, producer.flush, lambda: self.clock().timestamp(), settings.slack_history_lookup,
                                     settings.slack_timeout_seconds + 5, self._unbound_abandon, self.membership.in_doubt)
        self.dead_letters = DeadLetters(settings.dlq_topic, self.checkpoint.publish, settings.metrics_topic)
        if metering is not None:
            # Step 1 of each commit: publish the partials of the partitions being committed.
            self.checkpoint.before_flush.append(lambda parts: metering.checkpoint(self.checkpoint.next_offsets(settings.feedback_topic), self._wall_clock(), parts))
        self.now = self._wall_clock()  # whole seconds, refreshed once per poll: the hot path reads it
        self.stats = Stats()
        self.backpressure = Backpressure(consumer, settings.max_in_flight_alerts, self.stats)
        self.posting = Posting(self.deliveries, self.checkpoint, self.dead_letters, throttle, self.stats)
        if metering is not None:
            alerts = MetricAlerts(self.posting, posts, silences, lambda: self.renderer, settings.slack_default_channel, self.stats,
                                  self._unbound_abandon, clock)
            self._watch = MetricWatch(rules.metric_rules, metering.state, metering.emitter.current_start, alerts.fire)
            metering.emitter.watchers.append(self._watch)
        self.cases = cases
        self.casework = Casework(settings, cases, self.checkpoint, self.dead_letters, self.posting, posts, lambda: self.renderer,
                                 self.stats, clock, sink)
        self.link = link  # Slack interactivity (Socket Mode): buttons on alerts, and their live card
        self._next_expiry = 0
        self._stopping = False
        # kafka-python 3 calls the rebalance listener on its IO thread, possibly while this thread
        # works: the lock makes a rebalance happen between batches, never inside one.
        self.lock = threading.Lock()
        self.owned: set[TopicPartition] = set()
        self.polled_at = time.monotonic()  # the last return from poll(): /healthz
        self.joined = False  # the group has assigned partitions (possibly none) at least once: /readyz

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> Stats:
        """Process until `stop` is set, then finish what is in hand, commit and return."""
        self.consumer.subscribe([self.settings.feedback_topic, self.casework.topic], listener=Rebalance(self, self.settings.feedback_topic))
        next_stats = time.monotonic() + self.settings.stats_interval_seconds
        next_tick = 0.0
        self.view.sync()  # catch up with the state topic before the first event
        if self.metering is not None:
            self.metering.start()
        try:
            while not stop.is_set():
                with self.lock:
                    self.deliveries.settle()
                    self.backpressure.check(self.checkpoint.waiting)
                batch = self.consumer.poll(timeout_ms=100)  # rebalances happen around here, without the lock
                self.polled_at = time.monotonic()  # /healthz: the loop is alive
                with self.lock:
                    self.now = self._wall_clock()
                    for tp, records in batch.items():
                        if tp not in self.owned:  # revoked since the fetch: the new owner handles these
                            continue
                        self.stats.polled[tp] += len(records)  # per batch, not per record (/metrics)
                        handle = self.casework.handle if tp.topic == self.casework.topic else self.handle
                        for record in records:
                            handle(tp, record)
                    self.deliveries.settle()
                    if self.casework.waiting:
                        self.view.poll()  # alerts waiting for their task's pool member, cards for their alert: read now
                        self.casework.wake()
                    self.posting.post_digests(self.digests, self.renderer)
                    self.casework.release()
                    self.deliveries.release()  # intents, one flush, then the posts of this batch
                    if self.checkpoint.due():
                        self.checkpoint.commit()
                    if time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + 1.0
                        self._tick()
                    if self.reloader is not None:
                        self._reload()
                if time.monotonic() >= next_stats:
                    log.info("progress: %s", self.stats.line())
                    next_stats = time.monotonic() + self.settings.stats_interval_seconds
            with self.lock:
                self._finish()
        finally:
            self.checkpoint.abandon_all()
        return self.stats

    def handle(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        """One event: validate → evaluate → act. Never raises for bad input.

        Most events need no alert: they are read as EventData (events.event_data, about twice as
        fast as the model) and counted and evaluated as such. The FeedbackEvent is built for an
        event a rule matched, and for a bad one, whose dead letter gives the model's reason."""
        self.stats.consumed += 1
        state = self.checkpoint.seen(tp, record.offset)
        value = record.value if record.value is not None else b""
        event, data = None, event_data(value)
        if data is None:
            try:
                event = FeedbackEvent.model_validate_json(value)
            except ValidationError as exc:
                self.stats.bad_event(tp)
                letter = self.dead_letters.invalid(record, exc)
                log.warning("invalid event at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
                return
            data = event.model_dump()  # never expected: the model accepted what event_data refused; its answer wins
        occurred_at = data["occurred_at"]
        ts = epoch_seconds(occurred_at)
        if ts > self.now + FUTURE_LIMIT_S:
            self.stats.bad_event(tp)
            letter = self.dead_letters.rejected(record, "occurred_at", f"{occurred_at.isoformat()} is more than 5 minutes in the future")
            log.warning("rejected event at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
            return
        if self.metering is not None and not self.metering.count_data(tp.partition, data, ts, record.offset, self.now):
            self.stats.late += 1
            if self.stats.late in _LOUD_COUNTS:  # loud, but not once per event in a backfill
                log.warning(
                    "event %s (occurred_at %s) is too late for every metric window: counted in late_events, not in the "
                    "figures (%d such events so far; see metrics.lateness)", data["event_id"], occurred_at.isoformat(), self.stats.late,
                )
        if data["customer"]["id"] in self.cases.answerable and self.casework.answered(data):
            return  # the customer's answer after a resolution: it closes or reopens their task, and opens none
        match = self.rules.evaluate_data(data)
        if match is None:
            return
        self.act(tp, record, event or FeedbackEvent.model_validate_json(value), match, state)

    # -- acting ----------------------------------------------------------------------------

    def act(self, tp: TopicPartition, record: ConsumerRecord, event: FeedbackEvent, match: Match, state: PartitionState) -> None:
        """Throttle → route → open task → silence → batch → render → send. The offset waits for the alert.

        A replayed event whose alert is in Slack already posts nothing (alerting/posts.py)."""
        rule = match.owner
        self.stats.matched += 1
        self.stats.by_rule[rule.id] += 1
        key, episode = self.throttle.check(rule, event, self.now)
        if key is not None and episode is not None and not self.cases.finished(episode.task_id):
            # A repeat within the window: the open task's thread instead (a resolved task's episode is over).
            self.reply(tp, record, event, match, state, key, episode)
            return
        if is_unhappy(event.survey, event.score) and (joined := self.casework.joinable(event.customer.id, event.event_id)):
            self.reply(tp, record, event, match, state, None, joined)  # their unresolved task, not one more
            return
        destination = self.router.destination(event, rule)
        now = self.clock()
        task = open_task(event, rule.id, match.rule_ids, rule.severity, rule.followup, now, destination.owner,
                         self.casework.sla(rule.followup, now))
        earlier = self.posts.get(task.task_id)
        if earlier is not None and earlier.state == "posted":
            self.posting.replayed(earlier, key)
            return
        if earlier is None:  # else it was asked for, and flushed with the intent, before the crash
            self.casework.open(task, rule.followup, destination.channel, event)
        self.checkpoint.wait_for(state, record.offset)
        done: Done = [(tp, record)]

        def alert(task: FollowUpTask) -> None:  # the task as the keeper opened it: a pool's member is known
            what = f"alert for event {event.event_id}"
            if self.posting.silenced(self.silences.holding(event, rule.id, self.clock()), f"{what} (rule {rule.id})"):
                self.checkpoint.done(tp, record.offset)  # the task is open either way
                return

            def batch_and_send() -> None:
                held = self.digests.batch(rule, destination.channel, Item(tp, record, event, task.task_id), thread_starter=key is not None)
                if held == "rate_limited":
                    self.stats.limited(destination.channel)
                if held is not None:
                    return  # posted with its digest or rate-limit summary: rendered there, not here
                alert = self.posting.render(what, [record], {"channel": destination.channel, "template": rule.alert.template},
                                            lambda: self.renderer.render(rule.alert.template, destination.channel, event, match, task))
                if alert is None:
                    self.checkpoint.done(tp, record.offset)  # dead-lettered; the task is open either way
                    return
                if self.casework.cards is not None:  # buttons, steps and status under what the template rendered
                    alert.blocks = with_card(alert.blocks, new_card(task))
                on_sent = None if key is None else lambda outcome: self.throttle.posted(key, outcome.channel, outcome.ts)
                future = self.posting.send(alert, state.abandon, done, [Intent(task.task_id, "alert", destination.channel, tp.partition)], on_sent)
                if key is not None:
                    self.throttle.start(key, task.task_id, event, rule, self.now, future)

            if earlier is None:
                batch_and_send()
            else:  # an intent and no `posted` record: Slack may have it already
                self.posting.recheck(earlier, task.task_id, state, done, batch_and_send, key)

        self.casework.when_assigned(task, state.abandon, alert)

    def reply(self, tp: TopicPartition, record: ConsumerRecord, event: FeedbackEvent, match: Match,
              state: PartitionState, key: str | None, episode: Episode) -> None:
        """A throttled match (`key`: its episode), or another unhappy answer from a customer with an unresolved task:
        update that task and reply in its Slack thread; no new task, no new alert."""
        rule = match.owner
        slot = reply_slot(episode.task_id, event.event_id)
        earlier = self.posts.get(slot)
        if earlier is not None and earlier.state == "posted":
            self.posting.replayed(earlier, None)
            return
        if key is None:
            self.stats.joined += 1
        else:
            self.stats.throttled += 1
        if earlier is None:  # else the answer was counted, and its update flushed with the intent, before the crash
            self.casework.update(self.throttle.join(key, episode, event, match, self.clock()))
        channel = episode.channel or self.router.destination(event, rule).channel
        what = f"thread reply for event {event.event_id}"
        reply = self.posting.render(what, [record], {"channel": channel, "template": REPLY_TEMPLATE},
                             lambda: self.renderer.render_reply(channel, event, match, episode.task_id, episode.answers))
        if reply is None or self.posting.silenced(self.silences.holding(event, rule.id, self.clock()), what):
            return
        reply.thread_ts, reply.parent = episode.thread_ts, episode.parent
        self.posting.once(reply, Intent(slot, "reply", channel, tp.partition, episode.thread_ts), earlier, state, [(tp, record)])

    # -- the steps' plumbing -----------------------------------------------------------------

    # -- between batches -------------------------------------------------------------------

    def _tick(self) -> None:
        """About once a second: read the state topic, emit snapshots, expire throttle episodes and old post records."""
        self.view.poll()
        if self.metering is not None:
            self.metering.tick(self.now)
        self.throttle.expire(self.now)
        self.casework.tick(self.clock())
        if self.link is not None:
            self.link.settle()
        if self.now >= self._next_expiry:
            self._next_expiry = self.now + 60
            retention = int(self.settings.alert_record_retention.total_seconds())
            self.posts.expire(self.now, retention, {tp.partition for tp in self.owned})
            if self.casework.keeping:
                self.cases.expire(self.clock(), retention)

    def _reload(self) -> None:
        """Swap in a new valid rule set, or say loudly why the edit was refused."""
        assert self.reloader is not None
        outcome = self.reloader.poll(self.rules)
        if outcome is None:
            return
        if isinstance(outcome, str):
            self.stats.reloads_rejected += 1
            channel = self.settings.slack_default_channel
            if self.settings.slack_bot_token is not None and channel:  # an operational notice; never blocks the loop
                notice = notice_alert(channel, "rules_reload_rejected", ":warning: Rules reload rejected; the worker keeps the rules in use.", outcome)
                self.posting.send(notice, self._unbound_abandon, [], [])
            return
        self.rules, self.renderer = outcome
        self.router = Router(self.router.routes, self.router.default_channel)  # forget the old rules' compiled values
        if self.metering is not None:
            self._watch.rules = self.rules.metric_rules
        self.stats.reloads += 1

    def _wall_clock(self) -> int:
        return int(self.clock().timestamp())

    def _finish(self) -> None:
        """Stop fetching; give alerts in hand a few seconds; commit what is done."""
        self._stopping = True
        self.posting.post_digests(self.digests, self.renderer, force=True)  # what is in hand goes out now
        self.deliveries.release()
        deadline = time.monotonic() + self.settings.shutdown_timeout_seconds
        while self.checkpoint.waiting and time.monotonic() < deadline:
            self.deliveries.settle(wait_s=0.05)
        if self.checkpoint.waiting:
            log.warning("stopping with %d alerts not yet delivered: they will be redelivered on restart", self.checkpoint.waiting)
        self.checkpoint.abandon_all()
        self._unbound_abandon.set()
        self.checkpoint.commit()
        log.info("stopped: %s", self.stats.line())

    # -- rebalances (called by rebalance.py, under the lock) --------------------------------

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """New partitions: catch up with what their previous owners published, then restore their state."""
        self.membership.joined()  # the coordinator just answered (when, exactly: a sync taking long may end in doubt)
        self.checkpoint.rewind(partitions)
        self.view.sync()
        if self.metering is not None:
            self.metering.assigned(partitions)
        self.owned.update(partitions)
        self.casework.assigned(partitions)
        self.backpressure.assigned(partitions)
        self.joined = True

    def revoked(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Before partitions move to another worker: settle what we can, publish, let go.

        Returns the offsets to commit; the listener commits them (it runs on kafka-python's IO
        thread, where only the async commit may be awaited).
        """
        owned = [tp for tp in partitions if tp in self.checkpoint.partitions]
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        try:
            if not self._stopping:  # after _finish() everything is already settled and committed
                self.deliveries.release()  # what is in hand goes out first
                # Short: heartbeats wait while this runs.
                deadline = time.monotonic() + min(self.settings.shutdown_timeout_seconds, 2.0)
                while any(self.checkpoint.partitions[tp].waiting for tp in owned) and time.monotonic() < deadline:
                    self.deliveries.settle(wait_s=0.05)
                offsets = self.checkpoint.prepare(owned)  # publishes their metric partials, flushes
        finally:
            self.lost(partitions, revoked=True)
        return offsets

    def lost(self, partitions: list[TopicPartition], revoked: bool = False) -> None:
        """Drop all state of these partitions: their next owner restores it from Kafka. Not `revoked`: taken
        away by an eviction, perhaps long ago (checkpoint.forget)."""
        self.owned.difference_update(partitions)
        for tp in partitions:
            if tp in self.checkpoint.partitions:
                self.deliveries.forget(self.checkpoint.partitions[tp].abandon)
        self.digests.forget(set(partitions))
        self.casework.lost(partitions)
        self.checkpoint.forget([tp for tp in partitions if tp in self.checkpoint.partitions], revoked)
        if self.metering is not None:
            self.metering.revoked(partitions)

