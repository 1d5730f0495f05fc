"""The worker loop. The whole flow is here: consume → validate → evaluate → act → commit.

One thread owns the consumer, the producer and the checkpoint. Slack posts run on the
sink's threads; their outcomes come back through a queue (delivery/outbox.py) and are
applied here, so no Kafka client is ever touched from two threads.

Acting on a match is a short sequence of steps, each owned by a subpackage:
    throttle (alerting/throttle.py) → route (rules/routing.py) → open task (tasks/)
    → silence (alerting/silences.py) → batch (alerting/digest.py) → render (alerting/render.py)
    → owe (delivery/: post once; the event is done as soon as what it owes Slack is in Kafka)
This module says what happens, in order; the step says how.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from ..alerting import Alert, AlertRenderer, Digests, Episode, Item, Silences, Throttle, new_card, notice_alert, with_card
from ..config import Settings
from ..delivery import Form, Outbox, Outcome, Owed, Place, alert_slot, answer_slot, metric_slot
from ..events import FUTURE_LIMIT_S, UNHAPPY, FeedbackEvent, epoch_seconds, event_data, is_unhappy
from ..interactions import SlackLink
from ..keeper import Keeper
from ..metrics import Metering, MetricWatch
from ..rules import Match, Router, Rule, RuleSet
from ..stream import Backpressure, PartitionState, StateView, Stats, Stream
from ..tasks import Cases, FollowUpTask, open_task
from ..themes import Tagging
from .emerging import RisingComplaints
from .rebalance import Rebalance
from .reload import Reloader

log = logging.getLogger("worker")

_LOUD_COUNTS = frozenset(10**n for n in range(10))


@dataclass
class Rulebook:
    """What ops wrote, as the loop applies it now; a hot reload swaps it (`swap`)."""

    rules: RuleSet
    renderer: AlertRenderer
    router: Router
    watch: MetricWatch | None = None  # the metric rules' watcher, when metrics are on: it follows a reload

    def swap(self, rules: RuleSet, renderer: AlertRenderer) -> None:
        self.rules, self.renderer = rules, renderer
        self.router = Router(self.router.routes, self.router.default_channel)  # forget the old rules' compiled values
        if self.watch is not None:
            self.watch.rules = rules.metric_rules


@dataclass(frozen=True)
class Tables:
    """The worker state topic (stream/state.py) and the tables the loop reads and writes in it: every replica sees
    the same throttle episodes, silences and tasks."""

    view: StateView
    throttle: Throttle
    silences: Silences
    cases: Cases


class Worker:
    """The loop. Its collaborators are built in service.py (`build_worker`); it only says what happens, in order."""

    def __init__(
        self,
        settings: Settings,
        book: Rulebook,
        tables: Tables,
        stream: Stream,
        outbox: Outbox,
        keeper: Keeper,
        metering: Metering | None = None,
        reloader: Reloader | None = None,
        link: SlackLink | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        emerging: RisingComplaints | None = None,
    ) -> None:
        self.settings = settings
        self.emerging = emerging  # rising complaints: counts the terms of unhappy comments (its checkpoint: service.py)
        self.book = book
        self.outbox = outbox
        self.keeper = keeper
        self.metering = metering
        self.reloader = reloader
        self.link = link  # Slack interactivity (Socket Mode): buttons on alerts, and their live card
        self.clock = clock
        # Short names for what the loop uses on every event (and /metrics reads).
        self.consumer, self.checkpoint, self.membership = stream.consumer, stream.checkpoint, stream.membership
        self.dead_letters, self.stats = stream.dead_letters, stream.stats
        self.view, self.throttle, self.silences, self.cases = tables.view, tables.throttle, tables.silences, tables.cases
        self.view.on_send_error = self.checkpoint.on_send_error  # a state record (what is owed Slack) not in Kafka: no commit
        if metering is not None:
            # Step 1 of each commit: publish the partials of the partitions being committed.
            self.checkpoint.before_flush.append(
                lambda parts: metering.checkpoint(self.checkpoint.next_offsets(settings.feedback_topic), self._wall_clock(), parts)
            )
        self.digests = Digests(settings.channel_rate_limit_per_minute)
        self.backpressure = Backpressure(self.consumer, settings.max_in_flight_alerts, self.stats)
        self._next_full_warning: dict[str, float] = {}
        self.now = self._wall_clock()  # whole seconds, refreshed once per poll: the hot path reads it
        self._oldest_s = int(settings.alert_record_retention.total_seconds())  # a match older opens no task (_too_old)
        self._next_expiry = 0
        self._stopping = False
        # kafka-python 3 calls the rebalance listener on its IO thread, possibly while this thread
        # works: the lock makes a rebalance happen between batches, never inside one.
        self.lock = threading.Lock()
        self.owned: set[TopicPartition] = set()
        self.polled_at = time.monotonic()  # the last return from poll(): /healthz
        self.joined = False  # the group has assigned partitions (possibly none) at least once: /readyz

    @property
    def rules(self) -> RuleSet:
        return self.book.rules

    @property
    def renderer(self) -> AlertRenderer:
        return self.book.renderer

    @property
    def router(self) -> Router:
        return self.book.router

    # -- the loop --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> Stats:
        """Process until `stop` is set, then finish what is in hand, commit and return."""
        self.consumer.subscribe([self.settings.feedback_topic, self.keeper.topic], listener=Rebalance(self, self.settings.feedback_topic))  # type: ignore[arg-type]  # kafka-python 3 takes an AsyncConsumerRebalanceListener too, its stubs only the other kind
        next_stats = time.monotonic() + self.settings.stats_interval_seconds
        next_tick = 0.0
        self.view.sync()  # catch up with the state topic before the first event
        if self.metering is not None:
            self.metering.start()
        try:
            while not stop.is_set():
                with self.lock:
                    self.outbox.settle()
                    self.backpressure.check(self.checkpoint.waiting)
                batch = self.consumer.poll(timeout_ms=100)  # rebalances happen around here, without the lock
                self.polled_at = time.monotonic()  # /healthz: the loop is alive
                with self.lock:
                    batch = self.membership.screen(batch)  # none while perhaps evicted: fetched again once it is known
                    self.now = self._wall_clock()
                    for tp, records in batch.items():
                        if tp not in self.owned:  # revoked since the fetch: the new owner handles these
                            continue
                        self.stats.polled[tp] += len(records)  # per batch, not per record (/metrics)
                        handle = self.keeper.handle if tp.topic == self.keeper.topic else self.handle
                        for record in records:
                            handle(tp, record)
                    self.outbox.settle()
                    if self.keeper.waiting:
                        self.view.poll()  # alerts waiting for their task's pool member, cards for their alert: read now
                        self.keeper.wake()
                    self.post_digests()
                    self.keeper.release()
                    self.outbox.release()  # what is owed, one flush, the offsets released, then the posts of this batch
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
        tagging = self.rules.tag(data)  # the comment's themes, for the metrics, the rules and the task (none without themes)
        if self.metering is not None and not self.metering.count_data(tp.partition, data, ts, record.offset, self.now):
            self.stats.late += 1
            if self.stats.late in _LOUD_COUNTS:  # loud, but not once per event in a backfill
                log.warning(
                    "event %s (occurred_at %s) is too late for every metric window: counted in late_events, not in the "
                    "figures (%d such events so far; see metrics.lateness)",
                    data["event_id"],
                    occurred_at.isoformat(),
                    self.stats.late,
                )
        if self.emerging is not None and data["comment"] and (data["survey"], data["score"]) in UNHAPPY:
            self.emerging.count(tp.partition, data, tagging, ts, record.offset, self.now)  # its terms, for rising complaints
        if data["customer"]["id"] in self.cases.answerable and self.keeper.answered(data):
            return  # the customer's answer after a resolution: it closes or reopens their task, and opens none
        match = self.rules.evaluate_data(data)
        if match is None:
            return
        if ts < self.now - self._oldest_s:
            self._too_old(data["event_id"], occurred_at, match.owner.id)
            return
        self.act(tp, record, event or FeedbackEvent.model_validate_json(value), match, state, tagging)

    def _too_old(self, event_id: str, occurred_at: datetime, rule_id: str) -> None:
        """A match older than ALERT_RECORD_RETENTION opens no task and posts nothing: the records that say whether it
        was handled are kept only that long, so a replay from further back would open its task and alert again."""
        self.stats.too_old += 1
        if self.stats.too_old in _LOUD_COUNTS:  # loud, but not once per event of a replay
            log.warning(
                "event %s (occurred_at %s) matched rule %s but is older than ALERT_RECORD_RETENTION: no task, no alert "
                "(a replay must not alert twice; %d such events so far)",
                event_id,
                occurred_at.isoformat(),
                rule_id,
                self.stats.too_old,
            )

    # -- acting ----------------------------------------------------------------------------

    def act(
        self,
        tp: TopicPartition,
        record: ConsumerRecord,
        event: FeedbackEvent,
        match: Match,
        state: PartitionState,
        tagging: Tagging | None = None,
    ) -> None:
        """Throttle → route → open task → silence → batch → render → owe. The offset waits until the alert is owed
        (in Kafka, for whoever owns this partition: delivery/), not for Slack."""
        rule = match.owner
        self.stats.matched += 1
        self.stats.by_rule[rule.id] += 1
        key, episode = self.throttle.check(rule, event, self.now)
        if key is not None and episode is not None and not self.cases.finished(episode.task_id):
            # A repeat within the window: the open task's thread instead (a resolved task's episode is over).
            self.reply(tp, record, event, match, state, key, episode)
            return
        if is_unhappy(event.survey, event.score) and (joined := self.keeper.joinable(event.customer.id, event.event_id)):
            self.reply(tp, record, event, match, state, None, joined)  # their unresolved task, not one more
            return
        destination = self.router.destination(event, rule)
        now = self.clock()
        task = open_task(
            event,
            rule.id,
            match.rule_ids,
            rule.severity,
            rule.followup,
            now,
            destination.owner,
            self.keeper.sla(rule.followup, now),
            themes=tagging.themes if tagging else (),
            language=tagging.language if tagging else None,
        )
        slot = alert_slot(task.task_id)
        earlier = self.outbox.posts.get(slot)
        if earlier is not None:  # a replay: the alert is posted, or owed and on its way (this worker's, since assigned)
            self.stats.replayed += 1
            if key is not None:
                self._starts_thread(key, task.task_id, event, rule, earlier.thread, self.outbox.in_flight(slot))
            return
        task = self.keeper.open(task, rule.followup, destination.channel, event, tagging)  # with its suggested root cause
        hold = self.checkpoint.hold(state, record.offset)

        def alert(task: FollowUpTask) -> None:  # the task as the keeper opened it: a pool's member is known
            what = f"alert for event {event.event_id}"
            if self.stats.silenced_by(self.silences.holding(event, rule.id, self.clock()), f"{what} (rule {rule.id})"):
                hold.release()  # the task is open either way
                return
            place = Place(slot, tp, hold, record)
            full = self.outbox.owed(destination.channel) >= self.settings.max_owed_per_channel
            held = self.digests.batch(
                rule, destination.channel, Item(tp, record, event, task.task_id), thread_starter=key is not None, full=full
            )
            if held is not None:  # a line in a digest or rate-limit summary, posted later: owed from now
                if held == "rate_limited":
                    self.stats.limited(destination.channel)
                    if full:
                        self._outbox_full(destination.channel)
                self.outbox.owe_line(
                    place, destination.channel, Form.DIGEST if held == "grouped" else Form.SUMMARY, event.model_dump(mode="json"), rule.id
                )
                return

            def render() -> Alert:
                labels = self.rules.themes.labels(task.themes)
                alert = self.renderer.render(rule.alert.template, destination.channel, event, match, task, labels)
                if self.keeper.cards is not None:  # buttons, steps and status under what the template rendered
                    alert.blocks = with_card(alert.blocks, new_card(task))
                return alert

            future = self.outbox.post_once(what, [place], destination.channel, render)
            if key is not None and future is not None:
                self._starts_thread(key, task.task_id, event, rule, (None, None), future)

        self.keeper.when_assigned(task, state.abandon, alert)

    def _starts_thread(
        self,
        key: str,
        task_id: str,
        event: FeedbackEvent,
        rule: Rule,
        thread: tuple[str | None, str | None],
        future: Future[Outcome] | None,
    ) -> None:
        """This alert opens the throttle episode `key`: later matches reply in its thread, once it is in Slack."""
        if thread[1] is not None:
            self.throttle.posted(key, *thread)
        elif future is not None:
            self.throttle.start(key, task_id, event, rule, self.now, future)
            self.outbox.later(future, lambda outcome: self.throttle.posted(key, outcome.channel, outcome.ts))

    def _outbox_full(self, channel: str) -> None:
        if time.monotonic() >= self._next_full_warning.get(channel, 0.0):  # once a minute per channel
            self._next_full_warning[channel] = time.monotonic() + 60
            log.warning(
                "%d alerts owed to %s and not yet answered by Slack (MAX_OWED_PER_CHANNEL): new alerts for it go "
                "into its rate-limit summary until Slack catches up; none is dropped (%d folded so far)",
                self.outbox.owed(channel),
                channel,
                self.stats.rate_limited_by[channel],
            )

    def reply(
        self,
        tp: TopicPartition,
        record: ConsumerRecord,
        event: FeedbackEvent,
        match: Match,
        state: PartitionState,
        key: str | None,
        episode: Episode,
    ) -> None:
        """A throttled match (`key`: its episode), or another unhappy answer from a customer with an unresolved task:
        update that task and reply in its Slack thread; no new task, no new alert."""
        rule = match.owner
        slot = answer_slot(episode.task_id, event.event_id)
        earlier = self.outbox.posts.get(slot)
        if earlier is not None:  # a replay: posted, or owed and on its way
            self.stats.replayed += 1
            return
        if key is None:
            self.stats.joined += 1
        else:
            self.stats.throttled += 1
        self.keeper.update(self.throttle.join(key, episode, event, match, self.clock()))
        channel = episode.channel or self.router.destination(event, rule).channel
        what = f"thread reply for event {event.event_id}"
        if self.stats.silenced_by(self.silences.holding(event, rule.id, self.clock()), what):
            return
        self.outbox.post_once(
            what,
            [Place(slot, tp, self.checkpoint.hold(state, record.offset), record)],
            channel,
            lambda: self.renderer.render_reply(channel, event, match, episode.task_id, episode.answers),
            kind=Form.REPLY,
            thread_ts=episode.thread_ts,
            parent=episode.parent,
        )

    def post_digests(self, force: bool = False) -> None:
        """Digests whose wait is over (all of them when stopping): one message, a slot per task listed."""
        for digest in self.digests.due(force):
            places = [Place(alert_slot(item.task_id), item.tp, None, item.record) for item in digest.items]
            kind = Form.SUMMARY if digest.key[0] == "rate" else Form.DIGEST
            if (
                self.outbox.post_once(
                    f"digest for rule {digest.rule.id}",
                    places,
                    digest.channel,
                    partial(self.renderer.render_digest, digest),  # called at once: binds this digest
                    kind=kind,
                )
                is not None
            ):
                self.stats.digests += 1

    def _list_again(self, line: Owed) -> None:
        """An answer a partition's previous owner owed a line in a summary: in this worker's next summary."""
        rule = next((r for r in self.rules.rules if r.id == line.rule_id), None) or next(iter(self.rules.rules), None)
        if rule is None:
            log.error("no rules loaded: the answer owed a line in a summary for task %s waits for rules", line.slot.task_id)
            return
        self.digests.rate_limited(rule, line.channel, Item(line.tp, None, FeedbackEvent.model_validate(line.event), line.slot.task_id))

    # -- between batches -------------------------------------------------------------------

    def _tick(self) -> None:
        """About once a second: read the state topic, emit snapshots, expire throttle episodes and old post records."""
        self.view.poll()
        if self.metering is not None:
            self.metering.tick(self.now)
        self.throttle.expire(self.now)
        if self.emerging is not None:  # judge the current window (on one replica), post each rising term once
            self.emerging.tick(self.now, {tp.partition for tp in self.owned if tp.topic == self.settings.feedback_topic})
        self.keeper.tick(self.clock())
        if self.link is not None:
            self.link.settle()
        if self.now >= self._next_expiry:
            self._next_expiry = self.now + 60
            retention = int(self.settings.alert_record_retention.total_seconds())
            firing = {metric_slot(f).key for f in self.metering.state.still_firing()} if self.metering is not None else set()
            self.outbox.posts.expire(self.now, retention, {tp.partition for tp in self.owned}, keep=firing)
            if self.keeper.keeping:
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
                self.outbox.post_once(
                    "rules reload notice",
                    [],
                    channel,
                    lambda: notice_alert(
                        channel, "rules_reload_rejected", ":warning: Rules reload rejected; the worker keeps the rules in use.", outcome
                    ),
                )
            return
        self.book.swap(*outcome)
        self.stats.reloads += 1

    def _wall_clock(self) -> int:
        return int(self.clock().timestamp())

    def _finish(self) -> None:
        """Stop fetching; give alerts in hand a few seconds; commit what is done."""
        self._stopping = True
        self.post_digests(force=True)  # what is in hand goes out now
        self.outbox.release()
        deadline = time.monotonic() + self.settings.shutdown_timeout_seconds
        while (self.checkpoint.waiting or self.outbox.unanswered) and time.monotonic() < deadline:
            self.outbox.settle(wait_s=0.05)
            self.outbox.release()
        if self.outbox.unanswered:
            log.warning(
                "stopping with %d Slack posts not yet answered: they are owed, and posted by whoever owns their "
                "partitions next (this worker after a restart)",
                self.outbox.unanswered,
            )
        self.checkpoint.abandon_all()
        self.outbox.stopping.set()
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
        if self.emerging is not None:
            self.emerging.assigned(partitions)
        self.owned.update(partitions)
        self.keeper.assigned(partitions)
        self.backpressure.assigned(partitions)
        self.checkpoint.assigned(partitions)
        self.outbox.take_over(partitions, lambda tp: self.checkpoint.partitions[tp].abandon, self._list_again)
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
                self.outbox.release()  # what is in hand is owed, in Kafka, first
                # Short: heartbeats wait while this runs.
                deadline = time.monotonic() + min(self.settings.shutdown_timeout_seconds, 2.0)
                while any(self.checkpoint.partitions[tp].waiting for tp in owned) and time.monotonic() < deadline:
                    self.outbox.settle(wait_s=0.05)
                    self.outbox.release()
                offsets = self.checkpoint.prepare(owned)  # publishes their metric partials, flushes
        finally:
            self.lost(partitions, revoked=True)
        return offsets

    def lost(self, partitions: list[TopicPartition], revoked: bool = False) -> None:
        """Drop all state of these partitions: their next owner restores it from Kafka. Not `revoked`: taken
        away by an eviction, perhaps long ago (checkpoint.forget)."""
        self.owned.difference_update(partitions)
        self.outbox.forget(partitions, [self.checkpoint.partitions[tp].abandon for tp in partitions if tp in self.checkpoint.partitions])
        self.digests.forget(set(partitions))
        self.keeper.lost(partitions)
        self.checkpoint.forget([tp for tp in partitions if tp in self.checkpoint.partitions], revoked)
        if self.metering is not None:
            self.metering.revoked(partitions)
        if self.emerging is not None:
            self.emerging.revoked(partitions)
