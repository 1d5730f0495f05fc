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
   naming it (`SLACK_HISTORY_LOOKUP`); otherwise it is posted again.

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
from .sinks import Lookup, Outcome, Sink

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
    key: str  # "task_id" or "event_id": what the message's metadata names
    value: str
    abandon: threading.Event
    settle: Settle  # gets "found" (the message is there: done) or "missing" (post it again)


class Deliveries:
    def __init__(self, sink: Sink, posts: Posts, flush: Callable[[], None], clock: Callable[[], float] = time.time,
                 search: bool = True, grace_s: float = 15.0) -> None:
        self.sink = sink
        self.posts = posts
        self.flush = flush  # the producer's: intents must be in Kafka before their posts go out
        self.clock = clock
        self.search = search  # SLACK_HISTORY_LOOKUP
        self.grace_s = grace_s  # how long one post can take: an intent younger than this may still land
        self.found = 0  # slots found already posted in Slack (searched after a crash)
        self._queued: list[_Queued] = []
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
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        now = int(self.clock())
        for item in queued:
            for intent in item.intents:
                self.posts.intend(intent.slot, intent.kind, intent.channel, intent.partition, now, intent.thread_ts)
        if any(item.intents for item in queued):
            self.flush()
        for item in queued:
            inner = self.sink.submit(item.alert, item.abandon)
            inner.add_done_callback(lambda done, item=item: self._landed(item, outcome_of(done)))

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

    def recheck(self, post: Post, slot: str, key: str, value: str, abandon: threading.Event, settle: Settle) -> None:
        """A replayed slot with an intent and no `posted` record: settle with "found" or "missing" (post again)."""
        due = post.at + self.grace_s
        log.info("%s %s may be in Slack already (a post was under way at a crash): checking before posting it again",
                 key, value)
        self._rechecks.append(_Recheck(due, slot, key, value, abandon, settle))
        if due <= self.clock():
            self._run_rechecks()

    def _run_rechecks(self) -> None:
        now = self.clock()
        due = [r for r in self._rechecks if r.due <= now]
        if not due:
            return
        self._rechecks = [r for r in self._rechecks if r.due > now]
        for recheck in due:
            if recheck.abandon.is_set():
                continue  # the partition moved on: its next owner rechecks
            post = self.posts.get(recheck.slot)
            if post is None or post.state == "posted":  # settled by the previous owner meanwhile (or expired)
                self._found(recheck, Outcome("found", channel=post and post.channel_id, ts=post and post.ts), post)
                continue
            channel_id = post.channel_id or self.posts.channel_id(post.channel)
            if not self.search or channel_id is None:
                if self.search:
                    log.warning("cannot search Slack for %s %s: the id of channel %s is not known yet; posting again",
                                recheck.key, recheck.value, post.channel)
                recheck.settle(Outcome("missing", reason="not searched"))
                continue
            thread_ts = self._thread_of(recheck.slot, post)
            parent = recheck.slot.partition("/")[0] if post.kind == "reply" and thread_ts is None else None
            lookup = Lookup(channel_id, "task_id" if recheck.key == "task_id" else "event_id", recheck.value,
                            post.at - SEARCH_MARGIN_S, thread_ts, parent)
            future = self.sink.find(lookup, recheck.abandon)
            future.add_done_callback(lambda done, r=recheck, p=post: self._outcomes.put((self._after_search(r, p), outcome_of(done))))

    def _thread_of(self, slot: str, post: Post) -> str | None:
        """The thread a reply was intended for. None: its parent was in flight then, so it went under the
        task's alert if that made it, else to the top level; the sink searches both."""
        return post.thread_ts if post.kind == "reply" else None

    def _after_search(self, recheck: _Recheck, post: Post) -> Settle:
        def settle(outcome: Outcome) -> None:
            if outcome.status == "found":
                self._found(recheck, outcome, post)
            elif outcome.status == "undeliverable":  # Slack refused the search: post again, and say why
                if "missing_scope" in outcome.reason and self.search:
                    self.search = False
                    log.warning("SLACK_HISTORY_LOOKUP turned off: %s. Give the bot the channels:history and groups:history "
                                "scopes, or an alert in flight at a crash may be posted twice", outcome.reason)
                else:
                    log.warning("cannot search Slack for %s %s (%s): posting again", recheck.key, recheck.value, outcome.reason)
                recheck.settle(Outcome("missing", reason=outcome.reason))
            else:
                if outcome.status == "missing":
                    log.info("%s %s is not in Slack: posting it again", recheck.key, recheck.value)
                recheck.settle(outcome)  # missing (post again) or abandoned

        return settle

    def _found(self, recheck: _Recheck, outcome: Outcome, post: Post | None) -> None:
        if post is not None and post.state == "posting" and outcome.ts:
            self.found += 1
            log.info("%s %s was already in Slack (%s, ts %s): not posted again", recheck.key, recheck.value, outcome.channel, outcome.ts)
            self.posts.posted(recheck.slot, post.kind, post.channel, post.partition, int(self.clock()), outcome.channel,
                              outcome.ts, post.thread_ts)
        recheck.settle(outcome)

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
        """Drop queued posts and rechecks of a partition given up (its abandon event is set)."""
        for item in self._queued:
            if item.abandon is abandon:  # replies waiting to thread under it go top-level or give up too
                item.future.set_result(Outcome("abandoned", reason="partition revoked"))
        self._queued = [q for q in self._queued if q.abandon is not abandon]
        self._rechecks = [r for r in self._rechecks if r.abandon is not abandon]

    @property
    def pending(self) -> int:
        return len(self._queued) + len(self._rechecks)


def outcome_of(future: Future[Outcome]) -> Outcome:
    if future.cancelled():
        return Outcome("abandoned", reason="cancelled")
    error = future.exception()
    if error is not None:  # a bug, not Slack being down: dead-letter rather than block the partition
        return Outcome("undeliverable", reason=f"internal error while posting: {error!r}")
    return future.result()
