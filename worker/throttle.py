"""Per-key throttling: one task and one Slack thread per customer (or any key) per window.

    throttle: {key: customer.id, window: 7d}

The first match for a key opens the task and posts the alert as usual; it starts an
*episode*. Within the window, further matches of the same rule and key open no task and post
no top-level alert: each becomes a `followup.updated` record for the open task and a reply in
the first alert's Slack thread. Episodes live in the worker state topic (see metricstate.py),
so they survive restarts and every replica sees them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .durations import Duration
from .events import Customer, FeedbackEvent, Survey, field_getter, is_known_path, score_in_words
from .metricstate import StateView


class ThrottleSpec(BaseModel):
    """A rule's `throttle:` block."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Field path whose value identifies the episode, e.g. customer.id.")
    window: Duration = Field(description="How long after the first match further matches join its thread.")

    @field_validator("key")
    @classmethod
    def _known(cls, key: str) -> str:
        if not is_known_path(key):
            raise ValueError(f"unknown field path {key!r} (e.g. customer.id, customer.segment, attributes.account)")
        return key


class FollowUpUpdate(BaseModel):
    """A `followup.updated` record on FOLLOWUP_TOPIC (key: the task id): one more answer for an open task."""

    type: Literal["followup.updated"] = "followup.updated"
    task_id: str
    event_id: str = Field(description="The new answer.")
    rule_id: str
    matched_rules: list[str]
    updated_at: datetime
    answers_in_episode: int = Field(description="Answers in this task's throttle window so far, the first included.")
    customer: Customer
    survey: Survey
    score: int
    comment: str | None


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
        self._getters: dict[str, Callable[[FeedbackEvent], Any]] = {}

    def key(self, rule_id: str, spec: ThrottleSpec, event: FeedbackEvent) -> str | None:
        get = self._getters.get(spec.key)
        if get is None:
            get = self._getters[spec.key] = field_getter(spec.key)
        value = get(event)
        return None if value is None else f"{rule_id}|{value}"  # no key value: never throttled

    def ongoing(self, key: str, event: FeedbackEvent, now: int) -> Episode | None:
        """The open episode this answer joins, if any (not the answer that opened it: a replay)."""
        episode = self.view.episodes.get(key)
        if episode is None or now >= episode.until or episode.event_id == event.event_id:
            return None
        return episode

    def start(self, key: str, task_id: str, event: FeedbackEvent, spec: ThrottleSpec, now: int, parent: Future[Any]) -> Episode:
        episode = Episode(task_id, event.event_id, now, now + int(spec.window.total_seconds()), parent=parent)
        self.view.episodes[key] = episode
        self._save(key, episode)
        return episode

    def joined(self, key: str, episode: Episode) -> None:
        episode.answers += 1
        self._save(key, episode)

    def posted(self, key: str, channel: str | None, ts: str | None) -> None:
        """The first alert is in Slack: replies can thread under it, even after a restart."""
        episode = self.view.episodes.get(key)
        if episode is not None and ts:
            episode.channel, episode.thread_ts, episode.parent = channel, ts, None
            self._save(key, episode)

    def expire(self, now: int) -> None:
        for key in [k for k, e in self.view.episodes.items() if now >= e.until]:
            del self.view.episodes[key]
            self.view.publish([(f"throttle|{self.view.input_topic}|{key}".encode(), None)])

    def _save(self, key: str, episode: Episode) -> None:
        self.view.own_episodes.add(key)
        self.view.publish([(f"throttle|{self.view.input_topic}|{key}".encode(), episode.to_json())])


def reply_text(event: FeedbackEvent, rule_description: str, answers: int) -> str:
    """The plain text of a thread reply (the template adds the blocks)."""
    who = event.customer.name or event.customer.id
    return f"Another answer from {who} ({answers} in this episode): {score_in_words(event)} · {rule_description}"
