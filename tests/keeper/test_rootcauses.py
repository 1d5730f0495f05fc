"""The root-cause digest in the loop: once per period, across restarts, the next keeper and crashes mid-post.

In-process: each "replica" has its own state-topic reader over one shared in-memory log (as
every replica reads the one-partition state topic whole), the real Posts, Cases and Outbox,
and one shared fake Slack channel that keeps what was posted and can be searched
by the slots each message names. A restart or the next keeper is a new replica reading the
log from the beginning; a kill -9 is a replica that never hears Slack's answer.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.tasks.test_diagnose import journeys
from worker.alerting import Alert, AlertRenderer
from worker.config import Settings, load_settings
from worker.delivery import Outbox, Outcome, Posts, PostState, Search, root_causes_slot
from worker.keeper.rootcauses import RootCauseDigests
from worker.stream.counters import Stats
from worker.stream.deadletter import DeadLetters
from worker.stream.state import StateView
from worker.tasks import Cases, RootCauseDigest, cases_from_records

ROOT = Path(__file__).resolve().parents[2]
DIGEST = {"channel": "#cx-leads", "every": "1w", "at": "mon 09:00", "timezone": "Europe/Amsterdam"}
SCHEDULE = RootCauseDigest(**DIGEST)
WEDNESDAY = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # in the week after the one test_diagnose's tasks were resolved in


@dataclass
class _Record:
    key: bytes
    value: bytes | None


class StateLog:
    """The state topic: one partition, every record in order."""

    def __init__(self) -> None:
        self.records: list[_Record] = []


class Client:
    """One replica's consumer and producer of the state topic."""

    def __init__(self, log: StateLog) -> None:
        self.log = log
        self.position = 0

    def assign(self, tps: Any) -> None: ...
    def seek_to_beginning(self, *tps: Any) -> None:
        self.position = 0  # noqa: E704

    def flush(self) -> None: ...

    def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        self.log.records.append(_Record(key, value))

    def poll(self, timeout_ms: int = 0, max_records: int = 5000) -> dict[str, list[_Record]]:
        new = self.log.records[self.position :]
        self.position = len(self.log.records)
        return {"state-0": new} if new else {}


class Channel:
    """Slack, shared by every replica: keeps what is posted, searched by the slots a message names in its metadata."""

    def __init__(self) -> None:
        self.messages: list[Alert] = []
        self.searches = 0

    def find(self, search: Search, abandon: threading.Event) -> Future[Outcome]:
        self.searches += 1
        found = {
            slot: f"{n}.000"
            for n, message in enumerate(self.messages, 1)
            for slot in message.metadata["event_payload"].get("slots", ())
            if slot in search.slots
        }
        return _done(Outcome("found", channel="C0CXLEADS", found=found))


class Sink:
    """A replica's connection to the channel. `dies`: killed -9 before Slack's answer arrives, after the post
    reached Slack ("after") or before ("before")."""

    def __init__(self, channel: Channel, dies: str | None = None) -> None:
        self.channel = channel
        self.dies = dies

    def submit(self, alert: Alert, abandon: threading.Event, hold: Any = None) -> Future[Outcome]:
        if self.dies != "before":
            self.channel.messages.append(alert)
        if self.dies is not None:
            return Future()  # the answer never comes: the process is gone
        return _done(Outcome("sent", channel="C0CXLEADS", ts=f"{len(self.channel.messages)}.000"))

    def find(self, search: Search, abandon: threading.Event) -> Future[Outcome]:
        return self.channel.find(search, abandon)

    def close(self) -> None: ...


class Replica:
    """What a worker keeps for the digest, wired as the loop wires it; `second` runs what the loop runs every second."""

    def __init__(
        self, log: StateLog, sink: Sink, clock: list[datetime], settings: Settings | None = None, templates: Path = ROOT / "templates"
    ) -> None:
        settings = settings or load_settings(None, environ={}, root_cause_digest=DIGEST)
        client = Client(log)
        self.view = StateView("state", "feedback", client, client)  # type: ignore[arg-type]
        self.posts = Posts(self.view)
        self.cases = Cases(self.view, settings.task_policy)
        self.view.sync()  # a worker reads the state topic to its end at start and when it becomes the keeper
        self.letters: list[bytes] = []
        dead = DeadLetters("dlq", lambda topic, key, value: self.letters.append(value), "metrics")
        self.outbox = Outbox(
            sink,
            self.posts,
            client.flush,
            dead,
            Stats(),
            clock=lambda: clock[0].timestamp(),  # type: ignore[arg-type]
            grace_s=15,
        )
        renderer = AlertRenderer(templates)
        self.digests = RootCauseDigests(settings, self.cases, self.outbox, lambda: renderer)
        self.clock = clock

    def second(self) -> None:
        self.view.poll()
        self.digests.tick(self.clock[0])
        self.outbox.release()
        self.outbox.settle()


@pytest.fixture
def world() -> tuple[StateLog, Channel, list[datetime]]:
    """The state topic holding test_diagnose's tasks (saved by the keeper), an empty channel, and the clock."""
    log = StateLog()
    keeper = Cases(StateView("state", "feedback", Client(log), Client(log)), Settings().task_policy)  # type: ignore[arg-type]
    for case in cases_from_records(r for journey in journeys() for r in journey.records).values():
        keeper.save(case)
    return log, Channel(), [WEDNESDAY]


def periods(channel: Channel) -> list[tuple[str, int]]:
    """(period end, tasks) of every digest in the channel, in order."""
    return [(m.metadata["event_payload"]["period_end"], m.metadata["event_payload"]["tasks"]) for m in channel.messages]


def run(replica: Replica, seconds: int) -> None:
    for _ in range(seconds):
        replica.second()
        replica.clock[0] += timedelta(seconds=1)


def test_each_period_is_posted_once_when_it_ends(world) -> None:
    log, channel, clock = world
    replica = Replica(log, Sink(channel), clock)
    run(replica, 30)
    assert periods(channel) == [("2026-11-23T08:00:00+00:00", 5)]  # last week (Mon 09:00 Amsterdam = 08:00 UTC), once
    [digest] = channel.messages
    assert digest.channel == "#cx-leads" and "top cause shipping-delay (3)" in digest.text
    assert replica.posts.get(root_causes_slot(SCHEDULE.last_ended(clock[0]).end.isoformat())).state is PostState.POSTED
    clock[0] = datetime(2026, 11, 30, 7, 59, 50, tzinfo=UTC)  # Monday 08:59:50 in Amsterdam: this week has not ended
    run(replica, 9)
    assert len(channel.messages) == 1
    run(replica, 5)  # 09:00 passes
    assert periods(channel) == [("2026-11-23T08:00:00+00:00", 5), ("2026-11-30T08:00:00+00:00", 1)]
    assert "1 task resolved; top cause pricing (1)" in channel.messages[1].text
    assert "(−4 against the period before)" in str(channel.messages[1].blocks)


def test_a_restart_or_the_next_keeper_finds_it_posted_and_posts_nothing(world) -> None:
    log, channel, clock = world
    run(Replica(log, Sink(channel), clock), 3)
    assert len(channel.messages) == 1
    for _ in range(2):  # restarted; then another replica takes over the tasks
        run(Replica(log, Sink(channel), clock), 30)
    assert len(channel.messages) == 1 and channel.searches == 0  # known from the posted record, no need to ask Slack


def test_after_a_gap_only_the_latest_period_is_posted(world) -> None:
    log, channel, clock = world
    run(Replica(log, Sink(channel), clock), 3)
    clock[0] += timedelta(weeks=3)  # down for three periods
    run(Replica(log, Sink(channel), clock), 30)
    assert periods(channel) == [("2026-11-23T08:00:00+00:00", 5), ("2026-12-14T08:00:00+00:00", 0)]


def test_killed_after_slack_took_the_post_the_next_keeper_finds_it_in_the_channel(world) -> None:
    log, channel, clock = world
    run(Replica(log, Sink(channel, dies="after"), clock), 3)
    slot = root_causes_slot(SCHEDULE.last_ended(clock[0]).end.isoformat())
    assert len(channel.messages) == 1
    successor = Replica(log, Sink(channel), clock)
    assert successor.posts.get(slot).state is PostState.OWED  # the intent is all it knows
    run(successor, 30)  # the recheck waits for the post's grace, then searches the channel
    assert len(channel.messages) == 1 and channel.searches == 1
    assert successor.posts.get(slot).state is PostState.POSTED


def test_killed_before_the_post_reached_slack_the_next_keeper_posts_it_once(world) -> None:
    log, channel, clock = world
    run(Replica(log, Sink(channel, dies="before"), clock), 3)
    assert channel.messages == []
    run(Replica(log, Sink(channel), clock), 30)
    assert periods(channel) == [("2026-11-23T08:00:00+00:00", 5)] and channel.searches == 1


def test_a_template_error_is_dead_lettered_once_not_every_second(world, tmp_path: Path) -> None:
    log, channel, clock = world
    (tmp_path / "root_causes.slack.j2").write_text('{"text": "{{ no_such_variable }}"}')
    replica = Replica(log, Sink(channel), clock, templates=tmp_path)
    run(replica, 10)
    assert channel.messages == [] and len(replica.letters) == 1
    assert b"root_causes.slack.j2" in replica.letters[0] and b"no_such_variable" in replica.letters[0]


def test_without_the_setting_nothing_is_posted(world) -> None:
    log, channel, clock = world
    run(Replica(log, Sink(channel), clock, settings=load_settings(None, environ={})), 5)
    assert channel.messages == []


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future


def test_a_period_with_nothing_resolved_says_what_is_still_open_and_overdue(world) -> None:
    """Not "0 tasks resolved": when nobody resolved anything, the backlog is what the leads need to see."""
    log, channel, clock = world
    replica = Replica(log, Sink(channel), clock)
    run(replica, 3)
    clock[0] += timedelta(weeks=3)  # three quiet weeks: the latest ended period resolved nothing
    run(Replica(log, Sink(channel), clock), 30)
    quiet = channel.messages[-1]
    backlog = [case for case in replica.cases.by_id.values() if case.unresolved]
    overdue = sum(case.overdue(SCHEDULE.last_ended(clock[0]).end) for case in backlog)
    assert backlog and overdue, "the journeys leave some tasks open and overdue"
    assert quiet.text.endswith(f"no task resolved; {len(backlog)} still open, {overdue} overdue")
    assert "No task was resolved in this period." in str(quiet.blocks) and "task list --overdue" in str(quiet.blocks)
    assert quiet.metadata["event_payload"]["open_at_end"] == len(backlog)


def test_a_period_with_nothing_resolved_can_post_nothing(world) -> None:
    log, channel, clock = world
    settings = load_settings(None, environ={}, root_cause_digest=DIGEST | {"when_none_resolved": "skip"})
    run(Replica(log, Sink(channel), clock, settings), 3)
    clock[0] += timedelta(weeks=3)
    run(Replica(log, Sink(channel), clock, settings), 30)
    assert periods(channel) == [("2026-11-23T08:00:00+00:00", 5)], "the quiet period is not posted"
