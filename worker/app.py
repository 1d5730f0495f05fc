"""The worker loop. The whole flow is here: consume → validate → evaluate → act → commit.

One thread owns the consumer, the producer and the checkpoint. Slack posts run on the
sink's threads; their outcomes come back through a queue (alerting/delivery.py) and are
applied here, so no Kafka client is ever touched from two threads.

Acting on a match is a short sequence of steps, each owned by a subpackage:
    throttle (alerting/throttle.py) → route (rules/routing.py) → open task (tasks/)
    → render (alerting/render.py) → silence (alerting/silences.py) → batch (alerting/digest.py)
    → send (alerting/delivery.py)
This module says what happens, in order; the step says how.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from . import deadletter
from .alerting import (
    REPLY_TEMPLATE,
    Alert,
    AlertRenderer,
    Deliveries,
    Digests,
    Episode,
    Item,
    Outcome,
    Silence,
    Silences,
    Sink,
    TemplateRenderError,
    Throttle,
    notice_alert,
)
from .checkpoint import Backpressure, Checkpoint, PartitionState
from .config import Settings
from .events import FUTURE_LIMIT_S, FeedbackEvent, epoch_seconds, event_data
from .metrics import Metering, MetricRule, MetricSnapshot, MetricWatch
from .rebalance import Rebalance
from .reload import Reloader
from .rules import NO_CHANNEL, Match, Router, RuleSet
from .state import StateView
from .stats import Stats
from .tasks import FollowUpTask, open_task

log = logging.getLogger("worker")

_LOUD_COUNTS = frozenset(10**n for n in range(10))
Done = list[tuple[TopicPartition, ConsumerRecord]]  # the events an alert stands for: their offsets wait for it


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
        router: Router,
        metering: Metering | None = None,
        reloader: Reloader | None = None,
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
        self.router = router
        self.metering = metering
        self.reloader = reloader
        self.digests = Digests(settings.channel_rate_limit_per_minute)
        self.deliveries = Deliveries(sink)
        # Posts tied to no one partition (metric alerts, digests, notices) give up when the worker stops.
        self._unbound_abandon = threading.Event()
        if metering is not None:
            # Step 1 of each commit: publish the partials of the partitions being committed.
            self.checkpoint.before_flush.append(lambda parts: metering.checkpoint(self.checkpoint.next_offsets(), self._wall_clock(), parts))
            self._watch = MetricWatch(rules.metric_rules, metering.state, metering.emitter.current_start, self.metric_alert)
            metering.emitter.watchers.append(self._watch)
        self.now = self._wall_clock()  # whole seconds, refreshed once per poll: the hot path reads it
        self.stats = Stats()
        self.backpressure = Backpressure(consumer, settings.max_in_flight_alerts, self.stats)
        self._stopping = False
        # kafka-python 3 calls the rebalance listener on its IO thread, possibly while this thread
        # works: the lock makes a rebalance happen between batches, never inside one.
        self.lock = threading.Lock()
        self.owned: set[TopicPartition] = set()

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> Stats:
        """Process until `stop` is set, then finish what is in hand, commit and return."""
        self.consumer.subscribe([self.settings.feedback_topic], listener=Rebalance(self))
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
                with self.lock:
                    self.now = self._wall_clock()
                    for tp, records in batch.items():
                        if tp not in self.owned:  # revoked since the fetch: the new owner handles these
                            continue
                        for record in records:
                            self.handle(tp, record)
                    self.deliveries.settle()
                    self._post_digests()
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
                self.stats.invalid += 1
                letter = deadletter.invalid_event(exc, record.value, _source(record))
                log.warning("invalid event at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
                self.checkpoint.publish(self.settings.dlq_topic, record.key, letter.model_dump_json().encode())
                return
            data = event.model_dump()  # never expected: the model accepted what event_data refused; its answer wins
        occurred_at = data["occurred_at"]
        ts = epoch_seconds(occurred_at)
        if ts > self.now + FUTURE_LIMIT_S:
            self._reject(record, "occurred_at", f"{occurred_at.isoformat()} is more than 5 minutes in the future")
            return
        if self.metering is not None and not self.metering.count_data(tp.partition, data, ts, record.offset, self.now):
            self.stats.late += 1
            if self.stats.late in _LOUD_COUNTS:  # loud, but not once per event in a backfill
                log.warning(
                    "event %s (occurred_at %s) is too late for every metric window: counted in late_events, not in the "
                    "figures (%d such events so far; see metrics.lateness)", data["event_id"], occurred_at.isoformat(), self.stats.late,
                )
        match = self.rules.evaluate_data(data)
        if match is None:
            return
        self.act(tp, record, event or FeedbackEvent.model_validate_json(value), match, state)

    # -- acting ----------------------------------------------------------------------------

    def act(self, tp: TopicPartition, record: ConsumerRecord, event: FeedbackEvent, match: Match, state: PartitionState) -> None:
        """Throttle → route → open task → render → silence → batch → send. The offset waits for the alert."""
        rule = match.owner
        self.stats.matched += 1
        self.stats.by_rule[rule.id] += 1
        key, episode = self.throttle.check(rule, event, self.now)
        if key is not None and episode is not None:  # a repeat within the window: the open task's thread instead
            self.reply(tp, record, event, match, state, key, episode)
            return
        destination = self.router.destination(event, rule)
        task = open_task(event, rule.id, match.rule_ids, rule.severity, rule.followup, self.clock(), destination.owner)
        self._publish_task(task)
        what = f"alert for event {event.event_id}"
        alert = self._render(what, [record], {"channel": destination.channel, "template": rule.alert.template},
                             lambda: self.renderer.render(rule.alert.template, destination.channel, event, match, task))
        if alert is None or self._silenced(self.silences.holding(event, rule.id, self.clock()), f"{what} (rule {rule.id})"):
            return  # the task is open either way
        self.checkpoint.wait_for(state, record.offset)
        item = Item(tp, record, event, task.task_id)
        held = self.digests.batch(rule, destination.channel, item, thread_starter=key is not None)
        if held == "rate_limited":
            self.stats.rate_limited += 1
        if held is not None:
            return  # posted with its digest or rate-limit summary
        on_sent = None if key is None else lambda outcome: self.throttle.posted(key, outcome.channel, outcome.ts)
        future = self._send(alert, state.abandon, [(tp, record)], on_sent)
        if key is not None:
            self.throttle.start(key, task.task_id, event, rule, self.now, future)

    def reply(self, tp: TopicPartition, record: ConsumerRecord, event: FeedbackEvent, match: Match,
              state: PartitionState, key: str, episode: Episode) -> None:
        """A throttled match: update the open task and reply in its Slack thread; no new task, no new alert."""
        rule = match.owner
        self.stats.throttled += 1
        update = self.throttle.join(key, episode, event, match, self.clock())
        self.checkpoint.publish(self.settings.followup_topic, update.task_id.encode(), update.model_dump_json().encode())
        channel = episode.channel or self.router.destination(event, rule).channel
        what = f"thread reply for event {event.event_id}"
        reply = self._render(what, [record], {"channel": channel, "template": REPLY_TEMPLATE},
                             lambda: self.renderer.render_reply(channel, event, match, episode.task_id, episode.answers))
        if reply is None or self._silenced(self.silences.holding(event, rule.id, self.clock()), what):
            return
        reply.thread_ts, reply.parent = episode.thread_ts, episode.parent
        self.checkpoint.wait_for(state, record.offset)
        self._send(reply, state.abandon, [(tp, record)])

    def metric_alert(self, rule: MetricRule, snapshot: MetricSnapshot) -> None:
        """A metric rule fired: silence → render → send; if it cannot be delivered, dead-letter it."""
        self.stats.metric_alerts += 1
        channel = rule.channel or self.settings.slack_default_channel or NO_CHANNEL
        if self._silenced(self.silences.holding_metric(rule.id, snapshot.dimension, self.clock()), f"metric alert {rule.id}"):
            return
        log.warning("metric rule %s fired: %s (window %s)", rule.id, rule.condition.describe(), snapshot.window.start)
        alert = self._render(f"metric alert for rule {rule.id}", [None], {"channel": channel, "template": rule.template},
                             lambda: self.renderer.render_metric(rule, channel, snapshot))
        if alert is not None:
            self._send(alert, self._unbound_abandon, [])

    def _post_digests(self, force: bool = False) -> None:
        """Digests whose wait is over (all of them when stopping): one message, many offsets."""
        for digest in self.digests.due(force):
            done: Done = [(item.tp, item.record) for item in digest.items]
            alert = self._render(f"digest for rule {digest.rule.id}", [record for _, record in done], {"channel": digest.channel},
                                 lambda: self.renderer.render_digest(digest))
            if alert is None:
                for tp, record in done:
                    self.checkpoint.done(tp, record.offset)
                continue
            self.stats.digests += 1
            self._send(alert, self._unbound_abandon, done)

    # -- the steps' plumbing -----------------------------------------------------------------

    def _publish_task(self, task: FollowUpTask) -> None:
        self.stats.tasks += 1
        self.checkpoint.publish(self.settings.followup_topic, task.task_id.encode(), task.model_dump_json().encode())

    def _render(self, what: str, records: list[ConsumerRecord | None], alert: dict[str, Any],
                render: Callable[[], Alert]) -> Alert | None:
        """Render, or dead-letter the reason (the task, if any, is already open)."""
        try:
            return render()
        except TemplateRenderError as err:
            log.error("cannot render %s: %s", what, err)
            for record in records:
                self._dead_alert(record, f"template error: {err}", alert)
            return None

    def _silenced(self, silence: Silence | None, what: str) -> bool:
        if silence is not None:
            self.stats.silenced += 1
            log.info("%s silenced by %s: %s", what, silence.id, silence.reason)
        return silence is not None

    def _send(self, alert: Alert, abandon: threading.Event, done: Done,
              on_sent: Callable[[Outcome], None] | None = None) -> Future[Outcome]:
        """Post; once Slack answers, the events it stands for are done (or dead-lettered)."""

        def settle(outcome: Outcome) -> None:
            if outcome.status == "abandoned":
                return  # stays uncommitted: redelivered after a restart or rebalance
            if outcome.status == "sent":
                self.stats.alerts_sent += 1
                if on_sent is not None:
                    on_sent(outcome)
            else:
                log.error(
                    "ALERT NOT DELIVERED for event %s (rule %s, channel %s): %s; rendered alert sent to %s",
                    alert.event_id, alert.rule_id, alert.channel, outcome.reason, self.settings.dlq_topic,
                )
                for record in [record for _, record in done] or [None]:  # a digest: one letter per answer
                    self._dead_alert(record, outcome.reason, alert.to_dict())
            for tp, record in done:
                self.checkpoint.done(tp, record.offset)

        return self.deliveries.send(alert, abandon, settle)

    def _dead_alert(self, record: ConsumerRecord | None, reason: str, alert: dict[str, Any]) -> None:
        self.stats.alerts_dead += 1
        if record is None:  # a metric alert: no input record; offset -1 says so
            source = deadletter.Source(topic=self.settings.metrics_topic, partition=0, offset=-1)
            letter = deadletter.undeliverable_alert(reason, None, source, alert)
            self.checkpoint.publish(self.settings.dlq_topic, None, letter.model_dump_json().encode())
            return
        letter = deadletter.undeliverable_alert(reason, record.value, _source(record), alert)
        self.checkpoint.publish(self.settings.dlq_topic, record.key, letter.model_dump_json().encode())

    def _reject(self, record: ConsumerRecord, field: str, reason: str) -> None:
        self.stats.invalid += 1
        letter = deadletter.rejected_event(field, reason, record.value, _source(record))
        log.warning("rejected event at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
        self.checkpoint.publish(self.settings.dlq_topic, record.key, letter.model_dump_json().encode())

    # -- between batches -------------------------------------------------------------------

    def _tick(self) -> None:
        """About once a second: read the state topic, emit snapshots, expire throttle episodes."""
        self.view.poll()
        if self.metering is not None:
            self.metering.tick(self.now)
        self.throttle.expire(self.now)

    def _reload(self) -> None:
        """Swap in a new valid rule set, or say loudly why the edit was refused."""
        assert self.reloader is not None
        outcome = self.reloader.poll(self.rules)
        if outcome is None:
            return
        if isinstance(outcome, str):
            channel = self.settings.slack_default_channel
            if self.settings.slack_bot_token is not None and channel:  # an operational notice; never blocks the loop
                notice = notice_alert(channel, "rules_reload_rejected", ":warning: Rules reload rejected; the worker keeps the rules in use.", outcome)
                self._send(notice, self._unbound_abandon, [])
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
        self._post_digests(force=True)  # what is in hand goes out now
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
        self.view.sync()
        if self.metering is not None:
            self.metering.assigned(partitions)
        self.owned.update(partitions)
        self.backpressure.assigned(partitions)

    def revoked(self, partitions: list[TopicPartition]) -> dict[TopicPartition, OffsetAndMetadata]:
        """Before partitions move to another worker: settle what we can, publish, let go.

        Returns the offsets to commit; the listener commits them (it runs on kafka-python's IO
        thread, where only the async commit may be awaited).
        """
        owned = [tp for tp in partitions if tp in self.checkpoint.partitions]
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        try:
            if not self._stopping:  # after _finish() everything is already settled and committed
                # Short: heartbeats wait while this runs.
                deadline = time.monotonic() + min(self.settings.shutdown_timeout_seconds, 2.0)
                while any(self.checkpoint.partitions[tp].waiting for tp in owned) and time.monotonic() < deadline:
                    self.deliveries.settle(wait_s=0.05)
                offsets = self.checkpoint.prepare(owned)  # publishes their metric partials, flushes
        finally:
            self.lost(partitions)
        return offsets

    def lost(self, partitions: list[TopicPartition]) -> None:
        """Drop all state of these partitions: their next owner restores it from Kafka."""
        self.owned.difference_update(partitions)
        self.digests.forget(set(partitions))
        self.checkpoint.forget([tp for tp in partitions if tp in self.checkpoint.partitions])
        if self.metering is not None:
            self.metering.revoked(partitions)


def _source(record: ConsumerRecord) -> deadletter.Source:
    return deadletter.Source(topic=record.topic, partition=record.partition, offset=record.offset, timestamp=record.timestamp)
