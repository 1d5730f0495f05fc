"""Per-key throttling: one task and one Slack thread per customer (or any key) per window.

    throttle: {key: customer.id, window: 7d}

The first match for a key opens the task and posts the alert as usual; it starts an
*episode*. Within the window, further matches of the same rule and key open no task and post
no top-level alert: each becomes a `followup.updated` record for the open task and a reply in
the first alert's Slack thread. Episodes live in the worker state topic (records
`throttle|<input topic>|<rule id>|<key value>`, see stream/state.py), so they survive restarts and
every replica sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..events import FeedbackEvent, field_getter
from ..rules import Match, Rule
from ..stream import StateView
from ..tasks import FollowUpUpdate


@dataclass
class Episode:
    task_id: str
    event_id: str  # the answer that opened it
    opened_at: int
    until: int
    answers: int = 1
    channel: str | None = None
    thread_ts: str | None = None
    parent: Future[Any] | None = field(default=None, repr=False)  # the first alert, while in flight

    def to_json(self) -> bytes:
        fields = {k: v for k, v in self.__dict__.items() if k != "parent"}
        return json.dumps(fields).encode()


class Throttle:
    """Episodes by `<rule id>|<key value>`, read from and written to the state topic."""

    def __init__(self, view: StateView) -> None:
        self.view = view
        self.episodes: dict[str, Episode] = {}
        #: Episodes this worker changed since its last sync: their records coming back are echoes, older than memory.
        self.own: set[str] = set()
        self._getters: dict[str, Callable[[FeedbackEvent], Any]] = {}
        view.register("throttle", self._record, before_sync=self.own.clear)

    def check(self, rule: Rule, event: FeedbackEvent, now: int) -> tuple[str | None, Episode | None]:
        """The episode key of this match (None: the rule does not throttle, or the key field is empty),
        and the open episode it joins, if any."""
        if rule.throttle is None:
            return None, None
        key = self.key(rule.id, rule.throttle.key, event)
        return key, None if key is None else self.ongoing(key, event, now)

    def key(self, rule_id: str, path: str, event: FeedbackEvent) -> str | None:
        get = self._getters.get(path)
        if get is None:
            get = self._getters[path] = field_getter(path)
        value = get(event)
        return None if value is None else f"{rule_id}|{value}"  # no key value: never throttled

    def ongoing(self, key: str, event: FeedbackEvent, now: int) -> Episode | None:
        """The open episode this answer joins, if any (not the answer that opened it: a replay)."""
        episode = self.episodes.get(key)
        if episode is None or now >= episode.until or episode.event_id == event.event_id:
            return None
        return episode

    def start(self, key: str, task_id: str, event: FeedbackEvent, rule: Rule, now: int, parent: Future[Any]) -> Episode:
        assert rule.throttle is not None
        episode = Episode(task_id, event.event_id, now, now + int(rule.throttle.window.total_seconds()), parent=parent)
        self.episodes[key] = episode
        self._save(key, episode)
        return episode

    def join(self, key: str | None, episode: Episode, event: FeedbackEvent, match: Match, at: datetime) -> FollowUpUpdate:
        """One more answer in an open episode: the `followup.updated` record for its task (`key` None: an episode
        that is no throttle's, an unresolved task another answer joins)."""
        episode.answers += 1
        if key is not None:
            self._save(key, episode)
        return FollowUpUpdate(
            task_id=episode.task_id,
            event_id=event.event_id,
            rule_id=match.owner.id,
            matched_rules=match.rule_ids,
            updated_at=at,
            answers_in_episode=episode.answers,
            customer=event.customer,
            survey=event.survey,
            score=event.score,
            comment=event.comment,
        )

    def posted(self, key: str, channel: str | None, ts: str | None) -> None:
        """The first alert is in Slack: replies can thread under it, even after a restart."""
        episode = self.episodes.get(key)
        if episode is not None and ts:
            episode.channel, episode.thread_ts, episode.parent = channel, ts, None
            self._save(key, episode)

    def expire(self, now: int) -> None:
        for key in [k for k, e in self.episodes.items() if now >= e.until]:
            del self.episodes[key]
            self.view.publish([(self.view.key("throttle", key), None)])

    def _save(self, key: str, episode: Episode) -> None:
        self.own.add(key)
        self.view.publish([(self.view.key("throttle", key), episode.to_json())])

    def _record(self, key: str, value: bytes | None) -> None:
        """An episode read back from the state topic (another replica's, or an earlier run's)."""
        if value is None:
            self.episodes.pop(key, None)
        elif key not in self.own:
            data = json.loads(value)
            known = self.episodes.get(key)
            parent = known.parent if known is not None and not data.get("thread_ts") else None
            self.episodes[key] = Episode(**data, parent=parent)
