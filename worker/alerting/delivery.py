"""Every Slack message for a match, posted once: intents, posts, outcomes and the search after a crash.

Three rules make a crash or a rebalance never post an alert twice (posts.py has the records):
1. A post goes out only after its `posting` intent is in the state topic: `post()` queues it,
   and `release()` (once per batch of events) writes the intents of everything queued, flushes
   the producer once, and hands the posts to the sink.
2. When Slack answers, the `posted` record (channel id, ts) is written before anything else
   happens, so it is flushed before the event's offset can be committed.
3. A replayed event whose slot is `posting` is rechecked: once the intent is older than one
   Slack request can take (the previous owner's post has landed by then, or never will), the
   slot is done if its `posted` record has arrived, or if the channel holds a message of ours
   naming it (every message lists its slots in its metadata; one search per channel covers
   every slot in doubt; `SLACK_HISTORY_LOOKUP`); otherwise it is posted again.
4. Nothing is released while the worker's group membership is in doubt (`in_doubt`: no word from
   the group coordinator for half a session), and the sink starts no post then, retries and posts
   queued before the doubt included. Its network may have stalled long enough for the group to
   hand its partitions to another worker, which redoes their events without having seen intents
   this worker had not written yet, or finds no message for intents it did see; posting them too
   would post them twice. The posts wait until the coordinator answers again, or are given up with
   their partitions.

Outcomes come back on the sink's threads; they are applied on the worker thread, in
`settle()`, so the Kafka clients and the checkpoint are never touched from two threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from .posts import Kind, Post, Posts
from .render import Alert
from .sinks import Outcome, Search, Sink

log = logging.getLogger(__name__)

#: What to do once an outcome is known; runs on the worker thread.
Settle = Callable[[Outcome], None]
#: How far before an intent the channel is searched (clocks of replicas and Slack differ a little).
SEARCH_MARGIN_S = 120


@dataclass(frozen=True, slots=True)
class Intent:
    """A slot this post fills (posts.py), and where."""

    slot: str
    kind: Kind
    channel: str
    partition: int
    thread_ts: str | None = None


@dataclass
class _Queued:
    alert: Alert
    abandon: threading.Event
    settle: Settle
    intents: list[Intent]
    future: Future[Outcome]


@dataclass
class _Recheck:
    due: float  # unix seconds
    slot: str
    abandon: threading.Event
    settle: Settle  # gets "found" (the message is there: done) or "missing" (post it again)


class Deliveries:
    def __init__(self, sink: Sink, posts: Posts, flush: Callable[[], None], clock: Callable[[], float] = time.time,
                 search: bool = True, grace_s: float = 15.0, stopping: threading.Event | None = None,
                 in_doubt: Callable[[], bool] = lambda: False) -> None:
        self.sink = sink
        self.stopping = stopping or threading.Event()  # searches serve many partitions: they give up only then
        self.posts = posts
        self.flush = flush  # the producer's: intents must be in Kafka before their posts go out
        self.clock = clock
        self.search = search  # SLACK_HISTORY_LOOKUP
        self.grace_s = grace_s  # how long one post can take: an intent younger than this may still land
        self.found = 0  # slots found already posted in Slack (searched after a crash)
        self.in_doubt = in_doubt  # rule 4: is this worker perhaps no longer a member of its group?
        self._queued: list[_Queued] = []
        self._held: list[_Queued] = []  # intents written, posts held while membership was in doubt
        self._holding = False
        self._rechecks: list[_Recheck] = []
        self._outcomes: queue.SimpleQueue[tuple[Settle, Outcome]] = queue.SimpleQueue()

    # -- posting -----------------------------------------------------------------------------

    def post(self, alert: Alert, abandon: threading.Event, settle: Settle, intents: list[Intent]) -> Future[Outcome]:
        """Queue `alert`; it goes out at the next `release()`. `settle` runs after its `posted` records are written."""
        future: Future[Outcome] = Future()
        self._queued.append(_Queued(alert, abandon, settle, intents, future))
        return future

    def release(self) -> None:
        """Write the intents of everything queued, flush once, post; and run the rechecks that are due."""
        if self._rechecks:
            self._run_rechecks()
        if (self._queued or self._held) and self._hold():
            return
        if self._held:
            held, self._held = self._held, []
            self._submit(held)
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        now = int(self.clock())
        for item in queued:
            for intent in item.intents:
                self.posts.intend(intent.slot, intent.kind, intent.channel, intent.partition, now, intent.thread_ts)
            if item.intents:  # the message names its slots, so a search after a crash can tell it is there
                payload = item.alert.metadata.get("event_payload") or {}
                item.alert.metadata = {**item.alert.metadata, "event_payload": {**payload, "slots": [i.slot for i in item.intents]}}
        if any(item.intents for item in queued):
            self.flush()
            if self._hold():  # the flush waited long enough for the group to drop this worker
                self._held = queued
                return
        self._submit(queued)

    def _submit(self, queued: list[_Queued]) -> None:
        for item in queued:
            inner = self.sink.submit(item.alert, item.abandon, self.in_doubt)
            inner.add_done_callback(lambda done, item=item: self._landed(item, outcome_of(done)))

    def _hold(self) -> bool:
        """Rule 4: True (and said once) while the group membership is in doubt."""
        doubt = self.in_doubt()
        if doubt and not self._holding:
            log.warning("no word from the Kafka group coordinator for half a session: holding %d Slack posts until it answers "
                        "(the group may have given this worker's partitions to another, which posts them instead)",
                        len(self._queued) + len(self._held))
        self._holding = doubt
        return doubt

    def _landed(self, item: _Queued, outcome: Outcome) -> None:
        """On the sink's thread: replies threaded under this alert may go now; the rest waits for the worker thread."""
        item.future.set_result(outcome)
        self._outcomes.put((self._after_post(item), outcome))

    def _after_post(self, item: _Queued) -> Settle:
        def settle(outcome: Outcome) -> None:
            if outcome.status == "sent":
                now = int(self.clock())
                for intent in item.intents:
                    thread_ts = intent.thread_ts or (item.alert.thread_ts if intent.kind == "reply" else None)
                    self.posts.posted(intent.slot, intent.kind, intent.channel, intent.partition, now, outcome.channel,
                                      outcome.ts, thread_ts)
            item.settle(outcome)

        return settle

    # -- after a crash: is it already in Slack? ---------------------------------------------------

    def recheck(self, post: Post, slot: str, abandon: threading.Event, settle: Settle) -> None:
        """A replayed slot with an intent and no `posted` record: settle with "found" or "missing" (post again)."""
        log.info("%s may be in Slack already (a post was under way at a crash): checking before posting it again", slot)
        self._rechecks.append(_Recheck(post.at + self.grace_s, slot, abandon, settle))  # run by release(), together

    def _run_rechecks(self) -> None:
        """The rechecks that are due, one search per channel (Slack's history API has a low rate limit)."""
        now = self.clock()
        due = [r for r in self._rechecks if r.due <= now]
        if not due:
            return
        self._rechecks = [r for r in self._rechecks if r.due > now]
        by_channel: dict[str, list[tuple[_Recheck, Post]]] = {}
        for recheck in due:
            if recheck.abandon.is_set():
                continue  # the partition moved on: its next owner rechecks
            post = self.posts.get(recheck.slot)
            if post is None or post.state == "posted":  # settled by the previous owner meanwhile (or expired)
                self._found(recheck, post, post.channel_id if post else None, post.ts if post else None)
            elif not self.search:
                recheck.settle(Outcome("missing", reason="not searched"))
            else:
                by_channel.setdefault(post.channel_id or self.posts.channel_id(post.channel) or post.channel, []).append((recheck, post))
        for channel, items in by_channel.items():
            search = Search(
                channel, min(post.at for _, post in items) - SEARCH_MARGIN_S,
                slots=frozenset(r.slot for r, p in items if p.kind != "reply"),
                threads=_group((p.thread_ts, r.slot) for r, p in items if p.kind == "reply" and p.thread_ts),
                orphans={r.slot: r.slot.partition("/")[0] for r, p in items if p.kind == "reply" and not p.thread_ts},
            )
            future = self.sink.find(search, self.stopping)
            future.add_done_callback(lambda done, items=items: self._outcomes.put((self._after_search(items), outcome_of(done))))

    def _after_search(self, items: list[tuple[_Recheck, Post]]) -> Settle:
        def settle(outcome: Outcome) -> None:
            if outcome.status == "undeliverable":  # Slack refused the search: post again, and say why
                if "missing_scope" in outcome.reason and self.search:
                    self.search = False
                    log.warning("SLACK_HISTORY_LOOKUP turned off: %s. Give the bot the channels:history, groups:history, "
                                "channels:read and groups:read scopes, or an alert in flight at a crash may be posted twice",
                                outcome.reason)
                else:
                    log.warning("cannot search Slack for %d posts (%s): posting them again", len(items), outcome.reason)
            for recheck, post in items:
                if recheck.abandon.is_set():
                    continue
                ts = outcome.found.get(recheck.slot)
                if ts is not None:
                    self._found(recheck, post, outcome.channel, ts)
                elif outcome.status != "abandoned":
                    log.info("%s is not in Slack: posting it again", recheck.slot)
                    recheck.settle(Outcome("missing"))

        return settle

    def _found(self, recheck: _Recheck, post: Post | None, channel: str | None, ts: str | None) -> None:
        if post is not None and post.state == "posting" and ts:
            self.found += 1
            log.info("%s was already in Slack (%s, ts %s): not posted again", recheck.slot, channel, ts)
            self.posts.posted(recheck.slot, post.kind, post.channel, post.partition, int(self.clock()), channel, ts, post.thread_ts)
        recheck.settle(Outcome("found", channel=channel, ts=ts))

    def later(self, future: Future[Outcome], settle: Settle) -> None:
        """Run `settle` with this future's outcome on the worker thread (at the next `settle()`)."""
        future.add_done_callback(lambda done: self._outcomes.put((settle, outcome_of(done))))

    # -- outcomes, on the worker thread ----------------------------------------------------------

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

    def forget(self, abandon: threading.Event) -> None:
        """Drop queued posts and rechecks of a partition given up (its abandon event is set).

        A held digest or summary (tied to no one partition) goes too: the group moved the partitions of
        its events while the membership was in doubt, and their new owner (perhaps this worker) redoes them."""
        def gone(item: _Queued, held: bool) -> bool:
            return item.abandon is abandon or (held and item.abandon is self.stopping and bool(item.intents))

        for item in [q for q in self._queued if gone(q, False)] + [q for q in self._held if gone(q, True)]:
            item.future.set_result(Outcome("abandoned", reason="partition revoked"))  # replies waiting on it give up too
        self._queued = [q for q in self._queued if not gone(q, False)]
        self._held = [q for q in self._held if not gone(q, True)]
        self._rechecks = [r for r in self._rechecks if r.abandon is not abandon]

    @property
    def pending(self) -> int:
        return len(self._queued) + len(self._held) + len(self._rechecks)


def _group(pairs: object) -> dict[str, frozenset[str]]:
    grouped: dict[str, set[str]] = {}
    for key, value in pairs:  # type: ignore[attr-defined]
        grouped.setdefault(key, set()).add(value)
    return {key: frozenset(values) for key, values in grouped.items()}


def outcome_of(future: Future[Outcome]) -> Outcome:
    if future.cancelled():
        return Outcome("abandoned", reason="cancelled")
    error = future.exception()
    if error is not None:  # a bug, not Slack being down: dead-letter rather than block the partition
        return Outcome("undeliverable", reason=f"internal error while posting: {error!r}")
    return future.result()
