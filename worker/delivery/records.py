"""What the worker owes Slack and what Slack has: the `post` records of the state topic, one per slot.

A slot's record (slots.py names the slot) moves from OWED to POSTED, or to DEAD:
- OWED (`posting` on the wire): the message must reach Slack. Written before it is posted; it
  carries what to post (`message`: the rendered message; or `item`: an answer to list in a
  summary), so whoever owns the slot's input partition next can post it (outbox.py). Once it is
  in Kafka the event that caused it is done: its offset may be committed.
- POSTED: Slack has it, with Slack's channel id and `ts`. Replays and takeovers post nothing.
- DEAD: Slack refused it for good; the rendered message went to the dead-letter topic.

Every replica reads every record, so the `ts` of each task's alert is known everywhere (to thread
replies under it, and to update it in place). Records go after `ALERT_RECORD_RETENTION`,
tombstoned by the owner of the input partition they came from; an owed record never expires.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from pydantic_core import from_json, to_json

from ..stream import StateView
from .slots import For, Slot, parse_slot


class PostState(StrEnum):
    OWED = "posting"
    POSTED = "posted"
    DEAD = "dead"


class Form(StrEnum):
    """How a slot's message was posted."""

    ALONE = "alert"  # a message of its own
    REPLY = "reply"  # in a thread
    DIGEST = "digest"  # a line of a rule group's digest
    SUMMARY = "summary"  # a line of a rate-limit (or outbox-limit) summary


@dataclass(frozen=True, slots=True)
class Post:
    state: PostState
    kind: Form
    channel: str  # as routed: a name (#cx-alerts) or an id
    partition: int  # of `topic`: its owner keeps, expires and (owed) posts the record
    at: int  # when it was written, unix seconds
    channel_id: str | None = None  # Slack's id of the channel, once posted
    ts: str | None = None  # the message (posted), or the thread a reply goes under
    thread_ts: str | None = None
    topic: str | None = None  # the input topic of `partition`; None: tied to no partition (metric alerts, digests)
    message: dict[str, Any] | None = None  # owed: the rendered message to post (outbox.py)
    item: dict[str, Any] | None = None  # owed: an answer to list in a summary, {"event": ..., "rule": ...}

    @property
    def is_posted(self) -> bool:
        return self.state is PostState.POSTED

    @property
    def is_owed(self) -> bool:
        return self.state is PostState.OWED

    @property
    def is_settled(self) -> bool:
        """Posted, or given up for good: nothing more to do for it."""
        return self.state is not PostState.OWED

    @property
    def thread(self) -> tuple[str | None, str | None]:
        """(channel id, ts) of this message when posted: a thread to reply under."""
        return (self.channel_id, self.ts) if self.state is PostState.POSTED and self.ts else (None, None)


_FIELDS = tuple(f.name for f in fields(Post))
_OWED_PREFIX = b'{"state":"posting"'  # how every OWED record begins (`state` is the first field written)
_POSTED_PREFIX = b'{"state":"posted"'


class Posts:
    """The `post` records of the state topic, as every replica sees them."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.by_slot: dict[str, Post] = {}
        self._channel_ids: dict[str, str] = {}  # channel as routed -> Slack's id, learned from posts
        self._replies: dict[str, set[str]] = {}  # event id -> tasks it has an ANSWER slot under
        self.owed: Counter[str] = Counter()  # channel -> slots owed (every replica's): /metrics
        view.register("post", self._record)

    def get(self, slot: Slot) -> Post | None:
        return self.by_slot.get(slot.key)

    def replied(self, event_id: str) -> list[str]:
        """The tasks in whose thread this event's reply is on record (owed or posted)."""
        return list(self._replies.get(event_id, ()))

    def put(self, slot: Slot, post: Post) -> None:
        """Write `post` as the slot's record (the outbox's steps below; a test's setup)."""
        self._write(slot.key, post)

    def owe(
        self,
        slot: Slot,
        kind: Form,
        channel: str,
        topic: str | None,
        partition: int,
        now: int,
        thread_ts: str | None = None,
        message: dict[str, Any] | None = None,
        item: dict[str, Any] | None = None,
    ) -> None:
        """The message must reach Slack: written (and flushed) before it is posted."""
        self._write(
            slot.key, Post(PostState.OWED, kind, channel, partition, now, self.channel_id(channel), None, thread_ts, topic, message, item)
        )

    def posted(self, key: str, earlier: Post, now: int, channel_id: str | None, ts: str | None, thread_ts: str | None) -> None:
        """Slack has it: replays of this slot post nothing."""
        self._write(
            key,
            Post(
                PostState.POSTED,
                earlier.kind,
                earlier.channel,
                earlier.partition,
                now,
                channel_id,
                ts,
                thread_ts or earlier.thread_ts,
                earlier.topic,
            ),
        )

    def dead(self, key: str, earlier: Post, now: int) -> None:
        """Refused by Slack for good (dead-lettered): never posted again."""
        self._write(
            key,
            Post(
                PostState.DEAD,
                earlier.kind,
                earlier.channel,
                earlier.partition,
                now,
                earlier.channel_id,
                None,
                earlier.thread_ts,
                earlier.topic,
            ),
        )

    def owed_in(self, topic: str, partitions: set[int]) -> list[tuple[str, Post]]:
        """The slots still owed of these partitions of `topic`, oldest first: what their new owner must post."""
        found = [
            (key, post)
            for key, post in self.by_slot.items()
            if post.state is PostState.OWED and post.topic == topic and post.partition in partitions
        ]
        return sorted(found, key=lambda pair: pair[1].at)

    def channel_id(self, channel: str) -> str | None:
        """Slack's id for a channel as routed (history can only be searched by id)."""
        if channel[:1] in "CGD" and channel[1:].isalnum() and channel.isupper():
            return channel
        return self._channel_ids.get(channel)

    def expire(self, now: int, retention_s: int, partitions: set[int], keep: Collection[str] = ()) -> int:
        """Tombstone the settled records older than the retention that came from `partitions` (the ones this worker owns),
        except the slots in `keep` (a metric rule's alert while it still fires: without its record it would post again)."""
        old = [
            key
            for key, post in self.by_slot.items()
            if post.at + retention_s < now and post.partition in partitions and post.is_settled and key not in keep
        ]
        for key in old:
            self._forget(key)
            self.view.publish([(self.view.key("post", key), None)])
        return len(old)

    def _write(self, key: str, post: Post) -> None:
        self._keep(key, post)
        record = {name: value for name in _FIELDS if (value := getattr(post, name)) is not None}  # asdict deep-copies: slow
        # pydantic-core's JSON: an OWED record carries a whole message, which json.dumps took ~40 µs to write.
        self.view.publish([(self.view.key("post", key), to_json(record))])

    def _record(self, key: str, value: bytes | None) -> None:
        """A record read back from the state topic: another replica's, an earlier run's, or our own echo."""
        if value is None:
            self._forget(key)
            return
        known = self.by_slot.get(key)
        if known is not None and (value.startswith(_OWED_PREFIX) or (known.is_settled and value.startswith(_POSTED_PREFIX))):
            return  # our own record coming back (or one for a slot known owed or settled): nothing new, never step back
        data = from_json(value)
        self._keep(key, Post(**{**data, "state": PostState(data["state"]), "kind": Form(data["kind"])}))

    def _keep(self, key: str, post: Post) -> None:
        known = self.by_slot.get(key)
        if known is not None and known.is_owed:
            self.owed[known.channel] -= 1
        if post.is_owed:
            self.owed[post.channel] += 1
        self.by_slot[key] = post
        if post.channel_id and post.is_posted:
            self._channel_ids[post.channel] = post.channel_id
        if post.kind is Form.REPLY:
            slot = parse_slot(key)
            if slot.stands_for is For.ANSWER:
                self._replies.setdefault(slot.ref, set()).add(slot.task_id)

    def _forget(self, key: str) -> None:
        post = self.by_slot.pop(key, None)
        if post is None:
            return
        if post.is_owed:
            self.owed[post.channel] -= 1
        if post.kind is Form.REPLY:
            slot = parse_slot(key)
            tasks = self._replies.get(slot.ref) if slot.stands_for is For.ANSWER else None
            if tasks is not None:
                tasks.discard(slot.task_id)
                if not tasks:
                    del self._replies[slot.ref]
