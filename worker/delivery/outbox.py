"""Every Slack message, exactly once, without holding the stream back: the outbox.

Every sender (alerts, replies, digests, summaries, task notes, live-card lines, metric alerts,
root-cause digests, notices) says what to post, where, standing for which slots (slots.py), and
calls `Outbox.post_once`. The sequence, for slots with no record yet:

1. **Owe.** Each slot's OWED record (records.py), carrying the rendered message, is queued;
   `release()`, once per batch, writes the records of everything queued and flushes the producer
   once. The events that caused them are done then: their offsets are released (checkpoint.Hold)
   and committed with the next commit. Slack's answer is not waited for.
2. **Post.** The sink posts it, retrying for as long as Slack is unavailable (sinks.py).
3. **Outcome**, applied on the worker thread in `settle()`: sent → a POSTED record (channel id,
   ts), written before anything else; refused for good → the rendered message to the dead-letter
   topic and a DEAD record; abandoned (the partition was given up, the worker stopped) → it
   stays OWED, for the partition's next owner.
4. **Takeover.** A worker assigned partitions posts what they still owe (`take_over`), from the
   records. A post may have been on the wire when its owner died, so a slot is first looked for in
   its channel (every message names its slots in its metadata; one search per channel covers every
   slot in doubt; SLACK_HISTORY_LOOKUP), once the record is older than one Slack request can take.
   Owed answers of a digest or summary are looked for too, and those missing go back to the loop,
   which lists them in a summary again.
5. **Doubt.** Nothing is released while the worker's group membership is in doubt (`in_doubt`: no
   word from the group coordinator for half a session), and the sink starts no post then. Its
   network may have stalled long enough for the group to give its partitions to another worker,
   which redoes their events without the records this worker had not written yet. Nor does the
   loop handle what it fetches then (stream/membership.py, `Membership.screen`).

A slot with a record never posts again from `post_once`: POSTED and DEAD are settled; an OWED one is
this process's (queued, in flight, in a digest), or its partition owner's to take over. Only a slot
tied to no partition (metric alerts, root-cause digests) is searched for and posted by the caller
that asks again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kafka import TopicPartition

from ..alerting import Alert, TemplateRenderError
from ..stream import DeadLetters, Hold, Record, Stats
from .lookups import Lookups, Settle
from .records import Form, Post, Posts
from .sinks import Outcome, Sink, outcome_of
from .slots import For, Slot, parse_slot

log = logging.getLogger(__name__)


UNSENT_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Place:
    """A slot a message fills, the input partition that owes it (None: tied to no partition), and the
    event behind it: its offset (`hold`, released once the slot is owed) and its record (for a dead letter)."""

    slot: Slot
    tp: TopicPartition | None = None
    hold: Hold | None = None
    record: Record | None = None


@dataclass
class _Post:
    alert: Alert
    keys: list[str]  # the slots it fills
    abandon: threading.Event
    future: Future[Outcome]
    records: list[Record | None]
    on_sent: Settle | None = None


@dataclass
class Owed:
    """An answer owed a line in a summary, taken over from a partition's previous owner."""

    slot: Slot
    tp: TopicPartition
    channel: str
    event: dict[str, Any]
    rule_id: str


@dataclass
class _Batch:
    posts: list[_Post] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    written: bool = False  # records were written since the last flush


class Outbox:
    def __init__(
        self,
        sink: Sink,
        posts: Posts,
        flush: Callable[[], None],
        dead_letters: DeadLetters,
        stats: Stats,
        clock: Callable[[], float] = time.time,
        search: bool = True,
        grace_s: float = 15.0,
        stopping: threading.Event | None = None,
        in_doubt: Callable[[], bool] = lambda: False,
    ) -> None:
        self.sink = sink
        self.posts = posts
        self.flush = flush  # the producer's: records must be in Kafka before their posts go out
        self.dead_letters = dead_letters
        self.stats = stats
        self.clock = clock
        self.stopping = stopping or threading.Event()  # posts tied to no partition give up only then
        self.in_doubt = in_doubt  # rule 5: is this worker perhaps no longer a member of its group?
        self.queued: Counter[str] = Counter()  # channel -> posts of this process not answered yet (/metrics)
        self._mine: dict[str, tuple[TopicPartition | None, Future[Outcome] | None]] = {}  # slots this process owes
        self._unsent: dict[str, None] = {}  # owed slots whose post this process gave up before sending it (bounded)
        self._batch = _Batch()
        self._held: list[_Post] = []  # records written, posts held while membership was in doubt
        self._holding = False
        self._outcomes: queue.SimpleQueue[tuple[Settle, Outcome]] = queue.SimpleQueue()
        self.lookups = Lookups(sink, posts, clock, search, grace_s, self.stopping, self._outcomes.put)

    # -- the way in --------------------------------------------------------------------------------

    def post_once(
        self,
        what: str,
        places: list[Place],
        channel: str,
        render: Callable[[], Alert],
        kind: Form = Form.ALONE,
        on_sent: Settle | None = None,
        thread_ts: str | None = None,
        parent: Future[Outcome] | None = None,
    ) -> Future[Outcome] | None:
        """Post `render()` to `channel` once for these slots (a reply: under `thread_ts`, or under the alert `parent`
        still in flight); None if there is nothing to post. No places: a notice, posted with no record.

        Slots already posted, or owed by this process, are left out. A lone slot owed by nobody here (a record left
        by a crash, or by a worker that lost its partition) is looked for in its channel first. `on_sent` gets the
        outcome with the message's channel id and ts, also for a slot posted before (a replay). A template error is
        dead-lettered."""
        fresh: list[Place] = []
        for place in places:
            key = place.slot.key
            post = self.posts.by_slot.get(key)
            mine = self._mine.get(key)
            if post is None or (post.is_owed and mine is None and len(places) == 1):
                fresh.append(place)
            elif post.is_owed and mine is not None and mine[1] is None:
                fresh.append(place)  # a line of a digest of ours: posted now
            else:
                self._done(place)
                if post.is_settled:
                    self.stats.replayed += 1
                    if on_sent is not None and post.is_posted and len(places) == 1:
                        on_sent(Outcome("found", channel=post.channel_id, ts=post.ts))
        if places and not fresh:
            return None
        try:
            alert = render()
        except TemplateRenderError as err:
            log.error("cannot render %s: %s", what, err)
            for place in fresh or [Place(Slot(For.ALERT))]:
                self._dead_letter(place.record, channel, "template", f"template error: {err}", {"channel": channel})
                self._done(place)
            return None
        alert.thread_ts, alert.parent = thread_ts, parent
        abandon = next((p.hold.abandon for p in fresh if p.hold is not None), self.stopping)
        item = _Post(alert, [p.slot.key for p in fresh], abandon, Future(), [p.record for p in fresh] or [None], on_sent)
        message = _message_of(alert, item.keys) if item.keys else {}
        earlier = self.posts.by_slot.get(item.keys[0]) if item.keys else None
        if earlier is not None and earlier.is_owed and item.keys[0] not in self._mine:  # in doubt: search first
            self._mine[item.keys[0]] = (fresh[0].tp, item.future)
            self._done(fresh[0])
            self.look_up(item.keys[0], abandon, lambda outcome: self._after_lookup(item, outcome))
            return item.future
        now = int(self.clock())
        for i, place in enumerate(fresh):
            if self.posts.by_slot.get(place.slot.key) is None:
                topic, partition = (place.tp.topic, place.tp.partition) if place.tp is not None else (None, 0)
                self.posts.owe(
                    place.slot, kind, channel, topic, partition, now, thread_ts, message=message if i == 0 else {"same_as": item.keys[0]}
                )
                self._batch.written = True
            self._mine[place.slot.key] = (place.tp, item.future)
            if place.hold is not None:
                self._batch.holds.append(place.hold)
        self._queue(item)
        return item.future

    def owe_line(self, place: Place, channel: str, kind: Form, event: dict[str, Any], rule_id: str) -> None:
        """This answer will be a line in a digest or summary the loop posts later (`post_once` with its slot):
        owed from now, so its offset is released at `release()`, and a crash before the digest loses nothing."""
        topic, partition = (place.tp.topic, place.tp.partition) if place.tp is not None else (None, 0)
        if self.posts.by_slot.get(place.slot.key) is None:
            self.posts.owe(place.slot, kind, channel, topic, partition, int(self.clock()), item={"event": event, "rule": rule_id})
            self._batch.written = True
        self._mine[place.slot.key] = (place.tp, None)
        if place.hold is not None:
            self._batch.holds.append(place.hold)

    def owed(self, channel: str) -> int:
        """Posts of this process to `channel` not answered by Slack yet."""
        return self.queued[channel]

    @property
    def unanswered(self) -> int:
        """Posts of this process not answered by Slack yet, every channel."""
        return sum(self.queued.values())

    def in_flight(self, slot: Slot) -> Future[Outcome] | None:
        """The post of this process that fills `slot`, while it is on its way."""
        mine = self._mine.get(slot.key)
        return mine[1] if mine is not None else None

    # -- once per batch ----------------------------------------------------------------------------

    def release(self) -> None:
        """Write what is owed, flush once, release the events' offsets, post; and run the searches that are due."""
        self.lookups.run()
        batch = self._batch
        if not (batch.posts or batch.holds or self._held or batch.written):
            return
        if self._hold():
            return
        self._batch = _Batch()
        if batch.written:
            self.flush()
            if self._hold():  # the flush waited long enough for the group to drop this worker
                self._held.extend(batch.posts)
                self._batch.holds = batch.holds
                return
        for hold in batch.holds:
            hold.release()
        held, self._held = self._held, []
        for item in held + batch.posts:
            self._submit(item)

    def _queue(self, item: _Post) -> None:
        self.queued[item.alert.channel] += 1
        self._batch.posts.append(item)

    def _submit(self, item: _Post) -> None:
        parent = item.alert.parent
        if parent is not None and not parent.done():
            # A reply goes to the sink once its parent is posted, never to wait on a sink thread: parked there, replies
            # to alerts still being looked up after a takeover took every thread, and the searches their parents waited
            # for queued behind them for ever (the kill -9 burst test stalled, 1 run in 4).
            parent.add_done_callback(lambda _done: self._submit(item))
            return

        def landed(inner: Future[Outcome]) -> None:  # on the sink's thread
            outcome = outcome_of(inner)
            self._outcomes.put((lambda outcome: self._landed(item, outcome), outcome))
            _resolve(item.future, outcome)  # replies threaded under it go at once, not at the worker thread's next settle()

        self.sink.submit(item.alert, item.abandon, self.in_doubt).add_done_callback(landed)

    def _hold(self) -> bool:
        """Rule 5: True (and said once) while the group membership is in doubt."""
        doubt = self.in_doubt()
        if doubt and not self._holding:
            log.warning(
                "no word from the Kafka group coordinator for half a session: holding %d Slack posts until it answers "
                "(the group may have given this worker's partitions to another, which posts them instead)",
                len(self._batch.posts) + len(self._held),
            )
        self._holding = doubt
        return doubt

    def _landed(self, item: _Post, outcome: Outcome) -> None:
        """On the worker thread: record what Slack said, first; then tell the sender."""
        self.queued[item.alert.channel] -= 1
        now = int(self.clock())
        if outcome.status == "sent":
            self.stats.alerts_sent += 1
            self.stats.posted[item.alert.channel] += 1
            for key in item.keys:
                self._mine.pop(key, None)
                if (post := self.posts.by_slot.get(key)) is not None and post.is_owed:
                    self.posts.posted(key, post, now, outcome.channel, outcome.ts, item.alert.thread_ts)
            if item.on_sent is not None:
                item.on_sent(outcome)
        elif outcome.status == "abandoned":
            for key in item.keys:  # still owed: the partition's next owner (perhaps this worker) posts it
                self._mine.pop(key, None)
        else:
            log.error(
                "ALERT NOT DELIVERED for event %s (rule %s, channel %s): %s; rendered alert sent to %s",
                item.alert.event_id,
                item.alert.rule_id,
                item.alert.channel,
                outcome.reason,
                self.dead_letters.topic,
            )
            for record in item.records:  # a digest: one letter per answer
                self._dead_letter(record, item.alert.channel, "slack", outcome.reason, item.alert.to_dict())
            for key in item.keys:
                self._mine.pop(key, None)
                if (post := self.posts.by_slot.get(key)) is not None and post.is_owed:
                    self.posts.dead(key, post, now)
        _resolve(item.future, outcome)

    def _dead_letter(self, record: Record | None, channel: str, why: str, reason: str, alert: dict[str, Any]) -> None:
        self.stats.alerts_dead += 1
        self.stats.failed[channel, why] += 1
        self.dead_letters.undeliverable(record, reason, alert)

    def _done(self, place: Place) -> None:
        if place.hold is not None:
            place.hold.release()

    # -- a new owner's: what its partitions still owe -----------------------------------------------

    def take_over(
        self,
        partitions: Iterable[TopicPartition],
        abandon: Callable[[TopicPartition], threading.Event],
        relist: Callable[[Owed], None],
    ) -> None:
        """Post what these newly assigned partitions still owe, each searched for first. An answer owed a line in a
        summary goes to `relist` (on the worker thread) once it is known not to be in Slack: the previous owner may
        have posted its digest and lost its network before the POSTED record went out (found by tests/faults)."""
        by_topic: dict[str, set[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, set()).add(tp.partition)
        lines = 0
        for topic, numbers in by_topic.items():
            for key, post in self.posts.owed_in(topic, numbers):
                if key in self._mine:
                    continue
                tp = TopicPartition(topic, post.partition)
                if post.item is not None:
                    lines += 1
                    line = Owed(parse_slot(key), tp, post.channel, post.item["event"], post.item["rule"])
                    self._mine[key] = (tp, None)
                    self.look_up(key, abandon(tp), partial(self._line_looked_up, line, relist))
                elif post.message is not None and "same_as" not in post.message:
                    self._take_over(key, post, tp, abandon(tp))
        if lines:
            log.info("taking over %d answers owed a place in a summary", lines)

    def _line_looked_up(self, line: Owed, relist: Callable[[Owed], None], outcome: Outcome) -> None:
        if outcome.status == "missing":
            relist(line)  # listed in this worker's next summary: still ours (`_mine`) until it is posted
        else:  # in Slack already (now on record as posted), or the partition moved on
            self._mine.pop(line.slot.key, None)

    def _take_over(self, key: str, post: Post, tp: TopicPartition, abandon: threading.Event) -> None:
        message = post.message or {}
        keys = list(((message.get("metadata") or {}).get("event_payload") or {}).get("slots") or [key])
        alert = Alert(
            channel=post.channel,
            text=message.get("text", ""),
            blocks=message.get("blocks") or [],
            metadata=message.get("metadata") or {},
            event_id=message.get("event_id", ""),
            task_id=message.get("task_id", ""),
            rule_id=message.get("rule_id", ""),
            severity=message.get("severity", "medium"),
            thread_ts=post.thread_ts,
        )
        parent = message.get("parent")
        if alert.thread_ts is None and parent:
            channel_id, ts = self.posts.by_slot[parent].thread if parent in self.posts.by_slot else (None, None)
            alert.thread_ts, alert.channel = ts, channel_id or alert.channel
        elif alert.thread_ts is None and parent in self._mine:
            alert.parent = self._mine[parent][1]  # its alert is being taken over too: under it, once posted
        owed = [k for k in keys if (p := self.posts.by_slot.get(k)) is not None and p.is_owed and k not in self._mine]
        item = _Post(alert, owed, abandon, Future(), [None] * len(owed))
        for k in owed:
            self._mine[k] = (tp, item.future)
        self.look_up(key, abandon, lambda outcome: self._after_lookup(item, outcome))

    def _after_lookup(self, item: _Post, outcome: Outcome) -> None:
        if outcome.status == "missing":
            self._queue(item)
            return
        now = int(self.clock())
        for key in item.keys:
            self._mine.pop(key, None)
            post = self.posts.by_slot.get(key)
            if outcome.status == "found" and outcome.ts and post is not None and post.is_owed:  # the message's other slots
                self.posts.posted(key, post, now, outcome.channel, outcome.ts, None)
        if outcome.status == "found" and item.on_sent is not None:
            item.on_sent(outcome)
        _resolve(item.future, outcome)

    def look_up(self, key: str, abandon: threading.Event, settle: Settle) -> None:
        """A slot owed since before a crash: settle with "found" (it is in Slack) or "missing" (post it). One this
        process gave up before it was ever sent is missing: nothing to look for."""
        if self._unsent.pop(key, 0) is None:
            settle(Outcome("missing"))
        else:
            self.lookups.add(key, abandon, settle)

    def later(self, future: Future[Outcome], settle: Settle) -> None:
        """Run `settle` with this future's outcome on the worker thread (at the next `settle()`)."""
        future.add_done_callback(lambda done: self._outcomes.put((settle, outcome_of(done))))

    # -- outcomes, on the worker thread ---------------------------------------------------------------

    def settle(self, wait_s: float = 0.0) -> None:
        """Apply the outcomes that have arrived; optionally wait a little for the first."""
        try:
            item = self._outcomes.get(timeout=wait_s) if wait_s else self._outcomes.get_nowait()
        except queue.Empty:
            return
        while True:
            settle, outcome = item
            settle(outcome)
            try:
                item = self._outcomes.get_nowait()
            except queue.Empty:
                return

    def forget(self, partitions: Iterable[TopicPartition], abandon: Iterable[threading.Event]) -> None:
        """Partitions given up: what this process owes for them is their next owner's (it is on record).

        Queued posts and lookups of theirs go. A held digest or summary goes too: the group moved the partitions of
        its answers while the membership was in doubt, and their next owner (perhaps this worker) lists them again."""
        lost, events = set(partitions), set(abandon)

        def gone(item: _Post, held: bool) -> bool:
            return item.abandon in events or (
                held and item.abandon is self.stopping and any(self._mine.get(k, (None,))[0] in lost for k in item.keys)
            )

        dropped = [p for p in self._batch.posts if gone(p, False)] + [p for p in self._held if gone(p, True)]
        self._batch.posts = [p for p in self._batch.posts if p not in dropped]
        self._held = [p for p in self._held if p not in dropped]
        for item in dropped:
            self.queued[item.alert.channel] -= 1
            for key in item.keys:  # still owed, on record: whoever owns it next (or asks again) posts it
                self._mine.pop(key, None)
                self._unsent[key] = None
                if len(self._unsent) > UNSENT_KEPT:  # the others went to another worker, which looks for them
                    del self._unsent[next(iter(self._unsent))]
            _resolve(item.future, Outcome("abandoned", reason="partition revoked"))  # replies waiting on it give up too
        self.lookups.forget(events)
        for key in [k for k, (tp, _) in self._mine.items() if tp in lost]:
            del self._mine[key]

    @property
    def pending(self) -> int:
        return len(self._batch.posts) + len(self._held) + len(self.lookups.waiting)


def _message_of(alert: Alert, keys: list[str]) -> dict[str, Any]:
    """What an OWED record carries: the message as posted (it names its slots), so another worker can post it."""
    payload = alert.metadata.get("event_payload") or {}
    alert.metadata = {**alert.metadata, "event_payload": {**payload, "slots": keys}}
    message: dict[str, Any] = {
        "text": alert.text,
        "blocks": alert.blocks,
        "metadata": alert.metadata,
        "event_id": alert.event_id,
        "task_id": alert.task_id,
        "rule_id": alert.rule_id,
        "severity": alert.severity,
    }
    if alert.thread_ts is None and alert.parent is not None and alert.task_id:
        message["parent"] = Slot(For.ALERT, alert.task_id).key  # a reply under an alert still in flight
    return message


def _resolve(future: Future[Outcome], outcome: Outcome) -> None:
    """The first outcome wins: the sink's thread and the worker's may both tell it."""
    try:
        future.set_result(outcome)
    except InvalidStateError:
        pass
