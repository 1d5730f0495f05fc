"""What the worker has posted to Slack, per task: the record that makes every alert go out once.

Each Slack appearance of a match has a *slot*: `<task id>` for the task's alert (its own
message, or its line in a digest or rate-limit summary), `<task id>/<event id>` for the thread
reply of a later answer that joined the task. Its record in the state topic (kind `post`,
see state.py) moves from `posting` (written and flushed before the post goes out) to `posted`
(with Slack's channel id and `ts`, written as soon as Slack answers, flushed before the
event's offset is committed). A replayed event whose slot is `posted` posts nothing; one that
is `posting` may or may not be in Slack, so the channel is searched first (delivery.py).

Every replica reads every record, so the `ts` of each task's alert is known everywhere (to
thread replies under it, and to update it in place). Records go after `ALERT_RECORD_RETENTION`,
tombstoned by the owner of the input partition they came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Literal

from ..state import StateView

Kind = Literal["alert", "reply", "digest", "summary"]


@dataclass(frozen=True, slots=True)
class Post:
    state: Literal["posting", "posted"]
    kind: Kind
    channel: str  # as routed: a name (#cx-alerts) or an id
    partition: int  # the input partition of the event: its owner keeps and expires the record
    at: int  # when it was written, unix seconds
    channel_id: str | None = None  # Slack's id of the channel, once posted
    ts: str | None = None  # the message (posted), or the thread a reply goes under
    thread_ts: str | None = None


_FIELDS = tuple(f.name for f in fields(Post))


def reply_slot(task_id: str, event_id: str) -> str:
    return f"{task_id}/{event_id}"


class Posts:
    """The `post` records of the state topic, as every replica sees them."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.by_slot: dict[str, Post] = {}
        self._channel_ids: dict[str, str] = {}  # channel as routed -> Slack's id, learned from posts
        self._replies: dict[str, set[str]] = {}  # event id -> tasks it has a thread reply slot under (reply_slot)
        view.register("post", self._record)

    def get(self, slot: str) -> Post | None:
        return self.by_slot.get(slot)

    def replied(self, event_id: str) -> list[str]:
        """The tasks in whose thread this event's reply is on record (posting or posted)."""
        return list(self._replies.get(event_id, ()))

    def intend(self, slot: str, kind: Kind, channel: str, partition: int, now: int, thread_ts: str | None = None) -> None:
        """About to post: written before the post goes out (the caller flushes before posting)."""
        self._write(slot, Post("posting", kind, channel, partition, now, self.channel_id(channel), thread_ts=thread_ts))

    def posted(self, slot: str, kind: Kind, channel: str, partition: int, now: int, channel_id: str | None, ts: str | None,
               thread_ts: str | None = None) -> None:
        """Slack has it: replays of this slot post nothing."""
        if channel_id:
            self._channel_ids[channel] = channel_id
        self._write(slot, Post("posted", kind, channel, partition, now, channel_id, ts, thread_ts))

    def channel_id(self, channel: str) -> str | None:
        """Slack's id for a channel as routed (history can only be searched by id)."""
        if channel[:1] in "CGD" and channel[1:].isalnum() and channel.isupper():
            return channel
        return self._channel_ids.get(channel)

    def expire(self, now: int, retention_s: int, partitions: set[int]) -> int:
        """Tombstone the records older than the retention that came from `partitions` (the ones this worker owns)."""
        old = [slot for slot, post in self.by_slot.items() if post.at + retention_s < now and post.partition in partitions]
        for slot in old:
            self._forget(slot)
            self.view.publish([(self.view.key("post", slot), None)])
        return len(old)

    def _write(self, slot: str, post: Post) -> None:
        self._keep(slot, post)
        record = {name: value for name in _FIELDS if (value := getattr(post, name)) is not None}  # asdict deep-copies: slow
        self.view.publish([(self.view.key("post", slot), json.dumps(record, separators=(",", ":")).encode())])

    def _record(self, slot: str, value: bytes | None) -> None:
        """A record read back from the state topic: another replica's, an earlier run's, or our own echo."""
        if value is None:
            self._forget(slot)
            return
        post = Post(**json.loads(value))
        known = self.by_slot.get(slot)
        if known is not None and known.state == "posted" and post.state == "posting":
            return  # our own intent coming back after Slack answered: never step back
        self._keep(slot, post)
        if post.channel_id:
            self._channel_ids[post.channel] = post.channel_id

    def _keep(self, slot: str, post: Post) -> None:
        self.by_slot[slot] = post
        if post.kind == "reply":
            task_id, _, event_id = slot.partition("/")
            self._replies.setdefault(event_id, set()).add(task_id)

    def _forget(self, slot: str) -> None:
        post = self.by_slot.pop(slot, None)
        if post is not None and post.kind == "reply":
            task_id, _, event_id = slot.partition("/")
            tasks = self._replies.get(event_id)
            if tasks is not None:
                tasks.discard(task_id)
                if not tasks:
                    del self._replies[event_id]
