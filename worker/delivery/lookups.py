"""Is it already in Slack? The search of a channel for slots owed since before a crash (delivery's step 4).

A post may have been on the wire when its worker died, or a partition moved: its slot is owed,
and Slack may have the message all the same. Once one Slack request's time (`grace_s`) has passed
since the slot was taken over (the previous owner's post has landed by then, or never will), the slot is done if
its POSTED record has arrived, or if the channel holds a message of ours naming it (every message
lists its slots in its metadata; one search per channel covers every slot due;
SLACK_HISTORY_LOOKUP); otherwise it is posted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from .records import Form, Post, Posts
from .sinks import Outcome, Search, Sink, outcome_of
from .slots import parse_slot

log = logging.getLogger(__name__)

#: What to do once an outcome is known; runs on the worker thread.
Settle = Callable[[Outcome], None]
#: How far before a record the channel is searched (clocks of replicas and Slack differ a little).
SEARCH_MARGIN_S = 120


@dataclass
class _Lookup:
    due: float  # unix seconds
    key: str
    abandon: threading.Event
    settle: Settle  # gets "found" (the message is there: done) or "missing" (post it)


class Lookups:
    def __init__(
        self,
        sink: Sink,
        posts: Posts,
        clock: Callable[[], float] = time.time,
        search: bool = True,
        grace_s: float = 15.0,
        stopping: threading.Event | None = None,
        put: Callable[[tuple[Settle, Outcome]], None] = lambda item: None,
    ) -> None:
        self.sink = sink
        self.posts = posts
        self.clock = clock
        self.search = search  # SLACK_HISTORY_LOOKUP
        self.grace_s = grace_s  # how long one post can take: a record younger than this may still land
        self.stopping = stopping or threading.Event()  # a search serves many partitions: given up only then
        self.put = put  # hands an outcome to the worker thread
        self.found = 0  # slots found already posted in Slack
        self.waiting: list[_Lookup] = []

    def add(self, key: str, abandon: threading.Event, settle: Settle) -> None:
        """A slot owed by a worker that crashed or gave it up: settle with "found" (it is in Slack) or "missing" (post
        it), once no post of that worker can still land. Its last attempt began before this worker was given the slot
        (now), whenever the record was written (an owed post is retried for as long as Slack is down)."""
        post = self.posts.by_slot[key]
        log.info("%s may be in Slack already (a post was under way at a crash): checking before posting it", key)
        due = max(post.at, self.clock()) + self.grace_s
        self.waiting.append(_Lookup(due, key, abandon, settle))  # run by run(), together

    def forget(self, abandoned: set[threading.Event]) -> None:
        """Lookups of partitions given up end "abandoned": what waits on them (a reply on its parent) goes on too."""
        dropped = [r for r in self.waiting if r.abandon in abandoned]
        self.waiting = [r for r in self.waiting if r.abandon not in abandoned]
        for lookup in dropped:
            lookup.settle(Outcome("abandoned", reason="partition revoked"))

    def run(self) -> None:
        """The lookups that are due, one search per channel (Slack's history API has a low rate limit)."""
        if not self.waiting:
            return
        now = self.clock()
        due = [r for r in self.waiting if r.due <= now]
        if not due:
            return
        self.waiting = [r for r in self.waiting if r.due > now]
        by_channel: dict[str, list[tuple[_Lookup, Post]]] = {}
        for lookup in due:
            if lookup.abandon.is_set():
                continue  # the partition moved on: its next owner looks it up
            post = self.posts.by_slot.get(lookup.key)
            if post is None or post.is_settled:  # settled by the previous owner meanwhile (or expired)
                self._found(lookup, post, *(post.thread if post else (None, None)))
            elif not self.search:
                lookup.settle(Outcome("missing", reason="not searched"))
            else:
                by_channel.setdefault(post.channel_id or self.posts.channel_id(post.channel) or post.channel, []).append((lookup, post))
        for channel, items in by_channel.items():
            threads: dict[str, set[str]] = {}
            orphans: dict[str, str] = {}
            for lookup, post in items:
                if post.kind is Form.REPLY and post.thread_ts:
                    threads.setdefault(post.thread_ts, set()).add(lookup.key)
                elif post.kind is Form.REPLY:
                    orphans[lookup.key] = parse_slot(lookup.key).task_id  # under its task's alert, if that made it
            search = Search(
                channel,
                min(post.at for _, post in items) - SEARCH_MARGIN_S,
                slots=frozenset(r.key for r, p in items if p.kind is not Form.REPLY),
                threads={ts: frozenset(keys) for ts, keys in threads.items()},
                orphans=orphans,
            )
            future = self.sink.find(search, self.stopping)

            def searched(done: Future[Outcome], items: list[tuple[_Lookup, Post]] = items) -> None:
                self.put((self._after_search(items), outcome_of(done)))

            future.add_done_callback(searched)

    def _after_search(self, items: list[tuple[_Lookup, Post]]) -> Settle:
        def settle(outcome: Outcome) -> None:
            if outcome.status == "undeliverable":  # Slack refused the search: post again, and say why
                if "missing_scope" in outcome.reason and self.search:
                    self.search = False
                    log.warning(
                        "SLACK_HISTORY_LOOKUP turned off: %s. Give the bot the channels:history, groups:history, "
                        "channels:read and groups:read scopes, or an alert in flight at a crash may be posted twice",
                        outcome.reason,
                    )
                else:
                    log.warning("cannot search Slack for %d posts (%s): posting them again", len(items), outcome.reason)
            for lookup, post in items:
                if lookup.abandon.is_set():
                    continue
                ts = outcome.found.get(lookup.key)
                if ts is not None:
                    self._found(lookup, post, outcome.channel, ts)
                elif outcome.status != "abandoned":
                    log.info("%s is not in Slack: posting it", lookup.key)
                    lookup.settle(Outcome("missing"))

        return settle

    def _found(self, lookup: _Lookup, post: Post | None, channel: str | None, ts: str | None) -> None:
        if post is not None and post.is_owed and ts:
            self.found += 1
            log.info("%s was already in Slack (%s, ts %s): not posted again", lookup.key, channel, ts)
            self.posts.posted(lookup.key, post, int(self.clock()), channel, ts, None)
        lookup.settle(Outcome("found", channel=channel, ts=ts))
