"""Digests: many matches, one Slack message that accounts for every one of them.

Two things batch alerts:
- a rule's `group:` block, for lower severities:
      group: {by: [customer.segment], wait: 30s, interval: 5m, max_items: 20}
  The first match of a group waits `wait` for others, then one digest lists them (the first
  `max_items`, then "and N more"); later matches of the group go out every `interval`.
- the per-channel rate limit (CHANNEL_RATE_LIMIT_PER_MINUTE): past that many alerts in a
  minute, further alerts to the channel are collected into one summary that says so.

Every match still opens its own task. An answer's place in a digest is owed from the moment it
is batched (a record in the state topic, delivery/): its offset is committed without waiting for
the digest, and a worker that stops first leaves it to the partition's next owner.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from ..events import FeedbackEvent, field_getter
from ..rules import GroupSpec, Rule

#: How long a rate-limited channel's summary gathers the burst before it goes out.
RATE_SUMMARY_WAIT_S = 10.0


@dataclass
class Item:
    tp: TopicPartition
    record: ConsumerRecord | None  # None: taken over from the partition's previous owner (delivery/outbox.py)
    event: FeedbackEvent
    task_id: str


@dataclass
class Digest:
    key: tuple[Any, ...]
    rule: Rule  # owns the first item
    channel: str
    reason: str  # "grouped by customer.segment=smb" or "rate limit ..."
    group: dict[str, Any]
    max_items: int
    due: float
    items: list[Item] = field(default_factory=list)


class Digests:
    """Open digests and when each may go out. Used from the worker thread only."""

    def __init__(self, rate_limit_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_limit = rate_limit_per_minute
        self.clock = clock
        self.open: dict[tuple[Any, ...], Digest] = {}
        self._next_allowed: dict[tuple[Any, ...], float] = {}
        self._posted: dict[str, deque[float]] = {}  # channel -> times of recent top-level alerts

    def batch(
        self, rule: Rule, channel: str, item: Item, thread_starter: bool, full: bool = False
    ) -> Literal["grouped", "rate_limited"] | None:
        """Hold this alert for a digest ("grouped", "rate_limited"), or None: post it now (and count it).
        `full`: the channel owes Slack too many posts already (MAX_OWED_PER_CHANNEL): into its summary."""
        if rule.group is not None:  # one digest for many: posted when the group's wait is over
            self.group(rule, rule.group, channel, item)
            return "grouped"
        if not thread_starter and (full or self.over_limit(channel)):  # a thread starter always goes out itself
            self.rate_limited(rule, channel, item)
            return "rate_limited"
        self.posted(channel)
        return None

    # -- rule groups ----------------------------------------------------------------------

    def group(self, rule: Rule, spec: GroupSpec, channel: str, item: Item) -> None:
        values = {path: field_getter(path)(item.event) for path in spec.by}
        key = ("group", rule.id, channel, *values.values())
        digest = self.open.get(key)
        if digest is None:
            now = self.clock()
            due = max(now + spec.wait.total_seconds(), self._next_allowed.get(key, 0.0))
            reason = "grouped by " + ", ".join(f"{p}={v}" for p, v in values.items()) if values else "grouped"
            digest = self.open[key] = Digest(key, rule, channel, reason, values, spec.max_items, due)
            self._next_allowed[key] = due + spec.interval.total_seconds()
        digest.items.append(item)

    # -- the per-channel rate limit --------------------------------------------------------

    def over_limit(self, channel: str) -> bool:
        """True if this channel had its minute's worth of alerts: the next goes into a summary."""
        if not self.rate_limit:
            return False
        recent = self._recent(channel)
        return len(recent) >= self.rate_limit or ("rate", channel) in self.open

    def posted(self, channel: str) -> None:
        self._recent(channel).append(self.clock())

    def rate_limited(self, rule: Rule, channel: str, item: Item) -> None:
        key = ("rate", channel)
        digest = self.open.get(key)
        if digest is None:
            due = self.clock() + RATE_SUMMARY_WAIT_S  # gather the burst, then one summary
            reason = f"rate limit: more than {self.rate_limit} alerts a minute in {channel}, batched into one summary"
            digest = self.open[key] = Digest(key, rule, channel, reason, {}, 20, due)
        digest.items.append(item)

    # -- flushing --------------------------------------------------------------------------

    def due(self, force: bool = False) -> list[Digest]:
        now = self.clock()
        ready = [d for d in self.open.values() if force or d.due <= now]
        for digest in ready:
            del self.open[digest.key]
            if digest.key[0] == "rate":
                self.posted(digest.channel)
        return ready

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Revoked partitions: their items are the next owner's now."""
        for key, digest in list(self.open.items()):
            digest.items = [i for i in digest.items if i.tp not in partitions]
            if not digest.items:
                del self.open[key]

    def _recent(self, channel: str) -> deque[float]:
        recent = self._posted.setdefault(channel, deque())
        cutoff = self.clock() - 60.0
        while recent and recent[0] <= cutoff:
            recent.popleft()
        return recent
