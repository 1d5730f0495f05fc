"""The worker loop. The whole flow is here: consume → validate → evaluate → act → commit.

One thread owns the consumer, the producer and the checkpoint. Slack posts run on the
sink's threads; their outcomes come back through a queue and are applied here, so no
Kafka client is ever touched from two threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from . import deadletter
from .alerts import REPLY_TEMPLATE, Alert, AlertRenderer, TemplateRenderError, fit, slack_escape
from .checkpoint import Checkpoint, PartitionState
from .config import Settings
from .digest import Digests, Item
from .events import FUTURE_LIMIT_S, FeedbackEvent
from .followup import open_task
from .metering import Metering
from .metricrules import MetricRule, MetricWatch
from .metrics import MetricSnapshot
from .metricstate import StateView
from .rebalance import Rebalance
from .reload import Reloader
from .routing import NO_CHANNEL, Router
from .rules import Match, RuleSet
from .silences import silenced_by, silenced_metric
from .sinks import Outcome, Sink
from .stats import Stats
from .throttle import Episode, FollowUpUpdate, Throttle

log = logging.getLogger("worker")

_LOUD_COUNTS = frozenset(10**n for n in range(10))


@dataclass(frozen=True)
class _Pending:
    """An alert on its way to Slack, and what to do when it gets there. No tp/record: a metric alert."""

    tp: TopicPartition | None
    record: ConsumerRecord | None
    alert: Alert
    episode_key: str | None = None  # the first alert of a throttle episode: its ts is what replies thread under
    items: tuple[Item, ...] = ()  # a digest: the matches it stands for


class Worker:
    def __init__(
        self,
        settings: Settings,
        rules: RuleSet,
        renderer: AlertRenderer,
        sink: Sink,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        metering: Metering | None = None,
        reloader: Reloader | None = None,
        router: Router | None = None,
        throttle: Throttle | None = None,
        view: StateView | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.renderer = renderer
        self.sink = sink
        self.consumer = consumer
        self.producer = producer
        self.clock = clock
        self.checkpoint = Checkpoint(consumer, producer, settings.commit_interval_seconds)
        self.metering = metering
        self.reloader = reloader
        self.digests = Digests(settings.channel_rate_limit_per_minute)
        self.throttle = throttle
        self.view = view  # the worker state topic (metric partials, throttle episodes), read continuously
        self.router = router or Router(default_channel=settings.slack_default_channel)
        # Posts tied to no one partition (metric alerts, digests, notices) give up when the worker stops.
        self._unbound_abandon = threading.Event()
        if metering is not None:
            self.checkpoint.before_flush.append(self._checkpoint_metrics)
            self._watch = MetricWatch(rules.metric_rules, metering.view, metering.emitter.current_start, self.metric_alert)
            metering.emitter.watchers.append(self._watch)
        self.now = self._wall_clock()  # whole seconds, refreshed once per poll: the hot path reads it
        self.stats = Stats()
        self._outcomes: queue.SimpleQueue[tuple[_Pending, Outcome]] = queue.SimpleQueue()
        self._paused = False
        self._next_pause_warning = 0.0
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
        if self.view is not None:
            self.view.sync()  # catch up with the state topic before the first event
        if self.metering is not None:
            self.metering.start()
        try:
            while not stop.is_set():
                with self.lock:
                    self._apply_outcomes()
                    self._backpressure()
                batch = self.consumer.poll(timeout_ms=100)  # rebalances happen around here, without the lock
                with self.lock:
                    self.now = self._wall_clock()
                    for tp, records in batch.items():
                        if tp not in self.owned:  # revoked since the fetch: the new owner handles these
                            continue
                        for record in records:
                            self.handle(tp, record)
                    self._apply_outcomes()
                    self._post_digests()
                    if self.checkpoint.due():
                        self.checkpoint.commit()
                    if self.view is not None and time.monotonic() >= next_tick:
                        next_tick = time.monotonic() + 1.0
                        self.view.poll()
                        if self.metering is not None:
                            self.metering.tick(self.now)
                        if self.throttle is not None:
                            self.throttle.expire(self.now)
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
        """One event: validate → evaluate → act. Never raises for bad input."""
        self.stats.consumed += 1
        state = self.checkpoint.seen(tp, record.offset)
        try:
            event = FeedbackEvent.model_validate_json(record.value if record.value is not None else b"")
        except ValidationError as exc:
            self.stats.invalid += 1
            letter = deadletter.invalid_event(exc, record.value, _source(record))
            log.warning("invalid event at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
            self._publish(self.settings.dlq_topic, record.key, letter.model_dump_json().encode())
            return
        ts = int(event.occurred_at.timestamp())
        if ts > self.now + FUTURE_LIMIT_S:
            self._reject(record, "occurred_at", f"{event.occurred_at.isoformat()} is more than 5 minutes in the future")
            return
        if self.metering is not None and not self.metering.count(tp.partition, event, ts, record.offset, self.now):
            self.stats.late += 1
            if self.stats.late in _LOUD_COUNTS:  # loud, but not once per event in a backfill
                log.warning(
                    "event %s (occurred_at %s) is too late for every metric window: counted in late_events, not in the "
                    "figures (%d such events so far; see metrics.lateness)", event.event_id, event.occurred_at.isoformat(), self.stats.late,
                )
        match = self.rules.evaluate(event)
        if match is None:
            return
        self.act(tp, record, event, match, state)

    def act(self, tp: TopicPartition, record: ConsumerRecord, event: FeedbackEvent, match: Match, state: PartitionState) -> None:
        """Open the HEARD task and send the alert; the offset waits until the alert is settled."""
        rule = match.owner
        self.stats.matched += 1
        self.stats.by_rule[rule.id] += 1
        episode_key = self.throttle.key(rule.id, rule.throttle, event) if rule.throttle and self.throttle else None
        if episode_key is not None:
            assert self.throttle is not None
            episode = self.throttle.ongoing(episode_key, event, self.now)
            if episode is not None:
                self._join(tp, record, event, match, state, episode_key, episode)
                return
        destination = self.router.destination(event, rule)
        task = open_task(event, rule.id, match.rule_ids, rule.severity, rule.followup, self.clock(), destination.owner)
        channel = destination.channel
        try:
            alert = self.renderer.render(rule.alert.template, channel, event, match, task)
        except TemplateRenderError as err:
            # The task still opens; the alert cannot be rendered, so its reason goes to the DLQ.
            log.error("cannot render alert for event %s: %s", event.event_id, err)
            self._open(task)
            self._dead_alert(record, f"template error: {err}", {"channel": channel, "template": rule.alert.template})
            return
        self._open(task)
        silence = silenced_by(self.view.silences, event, rule.id, self.clock()) if self.view is not None else None
        if silence is not None:  # the task is open; the alert stays quiet
            self.stats.silenced += 1
            log.info("alert for event %s (rule %s) silenced by %s: %s", event.event_id, rule.id, silence.id, silence.reason)
            return
        self.checkpoint.wait_for(state, record.offset)
        if rule.group is not None:  # one digest for many: posted when the group's wait is over
            self.digests.group(rule, rule.group, channel, Item(tp, record, event, task.task_id))
            return
        if episode_key is None and self.digests.over_limit(channel):  # a thread starter always goes out itself
            self.stats.rate_limited += 1
            self.digests.rate_limited(rule, channel, Item(tp, record, event, task.task_id))
            return
        self.digests.posted(channel)
        pending = _Pending(tp, record, alert, episode_key)
        future = self.sink.submit(alert, state.abandon)
        if episode_key is not None and rule.throttle is not None and self.throttle is not None:
            self.throttle.start(episode_key, task.task_id, event, rule.throttle, self.now, future)
        future.add_done_callback(lambda f, p=pending: self._outcomes.put((p, _outcome_of(f))))

    def _post_digests(self, force: bool = False) -> None:
        """Digests whose wait is over (all of them when stopping): one message, many offsets."""
        for digest in self.digests.due(force):
            try:
                alert = self.renderer.render_digest(digest)
            except TemplateRenderError as err:
                log.error("cannot render digest for rule %s: %s", digest.rule.id, err)
                for item in digest.items:
                    self._dead_alert(item.record, f"template error: {err}", {"channel": digest.channel})
                    self.checkpoint.done(item.tp, item.record.offset)
                continue
            self.stats.digests += 1
            future = self.sink.submit(alert, self._unbound_abandon)
            pending = _Pending(None, None, alert, items=tuple(digest.items))
            future.add_done_callback(lambda f, p=pending: self._outcomes.put((p, _outcome_of(f))))

    def _join(self, tp: TopicPartition, record: ConsumerRecord, event: FeedbackEvent, match: Match,
              state: PartitionState, key: str, episode: Episode) -> None:
        """A throttled match: update the open task and reply in its Slack thread; no new task, no new alert."""
        assert self.throttle is not None
        rule = match.owner
        self.throttle.joined(key, episode)
        self.stats.throttled += 1
        update = FollowUpUpdate(
            task_id=episode.task_id, event_id=event.event_id, rule_id=rule.id, matched_rules=match.rule_ids,
            updated_at=self.clock(), answers_in_episode=episode.answers, customer=event.customer,
            survey=event.survey, score=event.score, comment=event.comment,
        )
        self._publish(self.settings.followup_topic, episode.task_id.encode(), update.model_dump_json().encode())
        channel = episode.channel or self.router.destination(event, rule).channel
        try:
            reply = self.renderer.render_reply(channel, event, match, episode.task_id, episode.answers)
        except TemplateRenderError as err:
            log.error("cannot render thread reply for event %s: %s", event.event_id, err)
            self._dead_alert(record, f"template error: {err}", {"channel": channel, "template": REPLY_TEMPLATE})
            return
        reply.thread_ts, reply.parent = episode.thread_ts, episode.parent
        silence = silenced_by(self.view.silences, event, rule.id, self.clock()) if self.view is not None else None
        if silence is not None:
            self.stats.silenced += 1
            log.info("thread reply for event %s silenced by %s: %s", event.event_id, silence.id, silence.reason)
            return
        self.checkpoint.wait_for(state, record.offset)
        future = self.sink.submit(reply, state.abandon)
        future.add_done_callback(lambda f, p=_Pending(tp, record, reply): self._outcomes.put((p, _outcome_of(f))))

    def metric_alert(self, rule: MetricRule, snapshot: MetricSnapshot) -> None:
        """A metric rule fired: post its alert; if it cannot be delivered, dead-letter it."""
        self.stats.metric_alerts += 1
        channel = rule.channel or self.settings.slack_default_channel or NO_CHANNEL
        silence = silenced_metric(self.view.silences, rule.id, snapshot.dimension, self.clock()) if self.view else None
        if silence is not None:
            self.stats.silenced += 1
            log.info("metric alert %s silenced by %s: %s", rule.id, silence.id, silence.reason)
            return
        log.warning("metric rule %s fired: %s (window %s)", rule.id, rule.condition.describe(), snapshot.window.start)
        try:
            alert = self.renderer.render_metric(rule, channel, snapshot)
        except TemplateRenderError as err:
            log.error("cannot render metric alert for rule %s: %s", rule.id, err)
            self._dead_alert(None, f"template error: {err}", {"channel": channel, "template": rule.template})
            return
        pending = _Pending(None, None, alert)
        future = self.sink.submit(alert, self._unbound_abandon)
        future.add_done_callback(lambda f, p=pending: self._outcomes.put((p, _outcome_of(f))))

    def _reload(self) -> None:
        """Between batches: swap in a new valid rule set, or say loudly why the edit was refused."""
        assert self.reloader is not None
        outcome = self.reloader.poll()
        if outcome is None:
            return
        if isinstance(outcome, str):
            log.error(
                "RULES RELOAD REJECTED: keeping the %d rules in use. Fix these and save again:\n  %s",
                len(self.rules) + len(self.rules.metric_rules), outcome.replace("\n", "\n  "),
            )
            self._notice(":warning: Rules reload rejected; the worker keeps the rules in use.", outcome)
            return
        self.rules, self.renderer = outcome
        self.router = Router(self.router.routes, self.router.default_channel)  # forget the old rules' compiled values
        if self.metering is not None:
            self._watch.rules = self.rules.metric_rules
        self.stats.reloads += 1
        log.warning("rules reloaded: %d rules and %d metric rules from %s", len(self.rules), len(self.rules.metric_rules),
                    ", ".join(self.rules.files))

    def _notice(self, headline: str, detail: str) -> None:
        """An operational message to SLACK_DEFAULT_CHANNEL (if Slack is configured); never blocks the loop."""
        channel = self.settings.slack_default_channel
        if self.settings.slack_bot_token is None or not channel:
            return
        blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": slack_escape(headline)}},
                  {"type": "section", "text": {"type": "plain_text", "text": fit(detail, 2900), "emoji": False}}]
        alert = Alert(channel=channel, text=slack_escape(headline), blocks=blocks,
                      metadata={"event_type": "feedback_worker_notice", "event_payload": {"kind": "rules_reload_rejected"}},
                      event_id="", task_id="", rule_id="", severity="info")
        future = self.sink.submit(alert, self._unbound_abandon)
        future.add_done_callback(lambda f, p=_Pending(None, None, alert): self._outcomes.put((p, _outcome_of(f))))

    # -- acting ----------------------------------------------------------------------------

    def _open(self, task: Any) -> None:
        self.stats.tasks += 1
        self._publish(self.settings.followup_topic, task.task_id.encode(), task.model_dump_json().encode())

    def _publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        self.producer.send(topic, key=key, value=value).add_errback(self.checkpoint.on_send_error)

    def _reject(self, record: ConsumerRecord, field: str, reason: str) -> None:
        self.stats.invalid += 1
        letter = deadletter.rejected_event(field, reason, record.value, _source(record))
        log.warning("rejected event at %s[%d]@%d → DLQ: %s", record.topic, record.partition, record.offset, letter.error)
        self._publish(self.settings.dlq_topic, record.key, letter.model_dump_json().encode())

    def _checkpoint_metrics(self, partitions: list[TopicPartition] | None) -> None:
        only = None if partitions is None else [tp.partition for tp in partitions]
        assert self.metering is not None
        self.metering.checkpoint(self.checkpoint.next_offsets(), self._wall_clock(), only)

    def _wall_clock(self) -> int:
        return int(self.clock().timestamp())

    def _dead_alert(self, record: ConsumerRecord | None, reason: str, alert: dict[str, Any]) -> None:
        self.stats.alerts_dead += 1
        if record is None:  # a metric alert: no input record; offset -1 says so
            source = deadletter.Source(topic=self.settings.metrics_topic, partition=0, offset=-1)
            letter = deadletter.undeliverable_alert(reason, None, source, alert)
            self._publish(self.settings.dlq_topic, None, letter.model_dump_json().encode())
            return
        letter = deadletter.undeliverable_alert(reason, record.value, _source(record), alert)
        self._publish(self.settings.dlq_topic, record.key, letter.model_dump_json().encode())

    def _apply_outcomes(self, wait_s: float = 0.0) -> None:
        """Apply the Slack outcomes that have arrived; optionally wait a little for the first."""
        try:
            item = self._outcomes.get(timeout=wait_s) if wait_s else self._outcomes.get_nowait()
        except queue.Empty:
            return
        while True:
            self._apply(*item)
            try:
                item = self._outcomes.get_nowait()
            except queue.Empty:
                return

    def _apply(self, pending: _Pending, outcome: Outcome) -> None:
        if outcome.status == "abandoned":
            return  # stays uncommitted: redelivered after a restart or rebalance
        if outcome.status == "sent":
            self.stats.alerts_sent += 1
            if pending.episode_key is not None and self.throttle is not None:
                self.throttle.posted(pending.episode_key, outcome.channel, outcome.ts)
        else:
            log.error(
                "ALERT NOT DELIVERED for event %s (rule %s, channel %s): %s; rendered alert sent to %s",
                pending.alert.event_id, pending.alert.rule_id, pending.alert.channel, outcome.reason, self.settings.dlq_topic,
            )
            for record in [item.record for item in pending.items] or [pending.record]:  # a digest: one letter per answer
                self._dead_alert(record, outcome.reason, pending.alert.to_dict())
        for item in pending.items:
            self.checkpoint.done(item.tp, item.record.offset)
        if pending.tp is not None and pending.record is not None:
            self.checkpoint.done(pending.tp, pending.record.offset)

    def _backpressure(self) -> None:
        """Stop fetching while too many alerts wait for Slack; polling keeps the group membership."""
        waiting = self.checkpoint.waiting
        limit = self.settings.max_in_flight_alerts
        if not self._paused and waiting >= limit:
            self.consumer.pause(*self.consumer.assignment())
            self._paused = True
            self.stats.pauses += 1
            if time.monotonic() >= self._next_pause_warning:  # once a minute, not on every pause of a long burst
                self._next_pause_warning = time.monotonic() + 60
                log.warning(
                    "%d alerts waiting for Slack (MAX_IN_FLIGHT_ALERTS): pausing consumption until it catches up "
                    "(%d pauses so far; Slack is the bottleneck, nothing is lost)", waiting, self.stats.pauses,
                )
        elif self._paused and waiting <= limit // 2:
            self.consumer.resume(*self.consumer.paused())
            self._paused = False
            log.debug("Slack caught up: resuming consumption")

    def _finish(self) -> None:
        """Stop fetching; give alerts in hand a few seconds; commit what is done."""
        self._stopping = True
        self._post_digests(force=True)  # what is in hand goes out now
        deadline = time.monotonic() + self.settings.shutdown_timeout_seconds
        while self.checkpoint.waiting and time.monotonic() < deadline:
            self._apply_outcomes(wait_s=0.05)
        if self.checkpoint.waiting:
            log.warning("stopping with %d alerts not yet delivered: they will be redelivered on restart", self.checkpoint.waiting)
        self.checkpoint.abandon_all()
        self._unbound_abandon.set()
        self.checkpoint.commit()
        log.info("stopped: %s", self.stats.line())

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
                    self._apply_outcomes(wait_s=0.05)
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


def _outcome_of(future: Any) -> Outcome:
    if future.cancelled():
        return Outcome("abandoned", reason="cancelled")
    error = future.exception()
    if error is not None:  # a bug, not Slack being down: dead-letter rather than block the partition
        return Outcome("undeliverable", reason=f"internal error while posting: {error!r}")
    return future.result()
