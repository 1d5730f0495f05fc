"""Every alert once, in-process: intents before posts, posted records, and the recheck of a replayed slot.

No Kafka and no Slack: the state topic is a recording fake, the sink a scripted one. The
end-to-end proof (kill -9 twenty times under a burst) is tests/e2e/test_exactly_once.py.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from tests.metrics.test_windows_state import Fake
from worker.alerting import Alert, Deliveries, Intent, Outcome, Posts, Search
from worker.state import StateView

ABANDON = threading.Event()


class ScriptedSink:
    """Answers posts with ts 1.000, 2.000, ...; searches with what `found` says; records the order of calls."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.found: dict[str, str] = {}  # slot -> ts of a message naming it
        self.searches: list[Search] = []
        self.refuse_search: str | None = None
        self.posted: list[Alert] = []

    def submit(self, alert: Alert, abandon: threading.Event, hold: Any = None) -> Future[Outcome]:
        self.log.append(f"post {alert.task_id}")
        self.posted.append(alert)
        return _done(Outcome("sent", channel="C0CXALERTS", ts=f"{len(self.log)}.000"))

    def find(self, search: Search, abandon: threading.Event) -> Future[Outcome]:
        self.searches.append(search)
        if self.refuse_search:
            return _done(Outcome("undeliverable", reason=f"Slack refused the search: {self.refuse_search}"))
        wanted = set(search.slots) | set(search.orphans) | {s for slots in search.threads.values() for s in slots}
        return _done(Outcome("found", channel=search.channel, found={s: ts for s, ts in self.found.items() if s in wanted}))

    def close(self) -> None: ...


class RecordingProducer(Fake):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def send(self, topic: str, key: bytes, value: bytes | None) -> None:
        super().send(topic, key, value)
        state = json.loads(value)["state"] if value else "tombstone"
        self.log.append(f"{state} {key.decode().split('|', 2)[2]}")

    def flush(self) -> None:
        self.log.append("flush")


@pytest.fixture
def world() -> tuple[list[str], Posts, ScriptedSink, Deliveries, list[float]]:
    log: list[str] = []
    producer = RecordingProducer(log)
    posts = Posts(StateView("state", "feedback", Fake(), producer))
    sink = ScriptedSink(log)
    now = [1_000_000.0]
    deliveries = Deliveries(sink, posts, producer.flush, clock=lambda: now[0], grace_s=15)
    return log, posts, sink, deliveries, now


def alert(task_id: str) -> Alert:
    return Alert(channel="#cx-alerts", text="x", blocks=[], metadata={}, event_id="e", task_id=task_id, rule_id="r", severity="high")


def test_intents_are_flushed_before_anything_is_posted_and_posted_records_follow(world) -> None:
    log, posts, _, deliveries, _ = world
    settled: list[Outcome] = []
    for task in ("task-1", "task-2"):
        deliveries.post(alert(task), ABANDON, settled.append, [Intent(task, "alert", "#cx-alerts", 0)])
    assert log == []  # nothing leaves before release()
    deliveries.release()
    deliveries.settle()
    assert log == ["posting task-1", "posting task-2", "flush", "post task-1", "post task-2", "posted task-1", "posted task-2"]
    assert [o.status for o in settled] == ["sent", "sent"]
    assert posts.get("task-1").state == "posted" and posts.get("task-1").channel_id == "C0CXALERTS"
    assert posts.channel_id("#cx-alerts") == "C0CXALERTS"  # learned: a later search can use it
    assert [a.metadata["event_payload"]["slots"] for a in world[2].posted] == [["task-1"], ["task-2"]]  # each names its slot


def test_a_digest_fills_one_slot_per_task_with_the_same_message(world) -> None:
    log, posts, _, deliveries, _ = world
    intents = [Intent(f"task-{n}", "digest", "#cx-alerts", n % 3) for n in range(5)]
    settled: list[Outcome] = []
    deliveries.post(alert(""), ABANDON, settled.append, intents)
    deliveries.release()
    deliveries.settle()
    assert sum(line.startswith("post ") for line in log) == 1  # one message
    [outcome] = settled
    records = [posts.get(f"task-{n}") for n in range(5)]
    assert {(r.state, r.kind, r.ts) for r in records} == {("posted", "digest", outcome.ts)}
    assert [r.partition for r in records] == [0, 1, 2, 0, 1]  # each kept by the owner of its own event


def test_our_own_intent_read_back_after_slack_answered_never_steps_back(world) -> None:
    _, posts, _, deliveries, _ = world
    deliveries.post(alert("task-1"), ABANDON, lambda _: None, [Intent("task-1", "alert", "#cx-alerts", 0)])
    deliveries.release()
    deliveries.settle()
    intent, posted = [(k, v) for _, k, v in posts.view.producer.sent]
    for key, value in (intent, posted, intent):  # the state topic replays our records; the intent again last
        posts.view._apply(key.decode(), value)
    assert posts.get("task-1").state == "posted"
    posts.view._apply(intent[0].decode(), None)  # a tombstone does remove it
    assert posts.get("task-1") is None


def recheck(deliveries: Deliveries, posts: Posts, *slots: str) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for slot in slots or ("task-1",):
        deliveries.recheck(posts.get(slot), slot, ABANDON, outcomes.append)
    deliveries.release()  # once per batch of events: the rechecks due, together
    deliveries.settle()
    return outcomes


def intend(posts: Posts, at: float, slot: str = "task-1") -> None:
    posts.posted("task-0", "alert", "#cx-alerts", 0, int(at), "C0CXALERTS", "0.5")  # the channel's id is known
    posts.intend(slot, "alert", "#cx-alerts", 0, int(at))


def test_a_young_intent_waits_for_the_previous_owner_and_its_posted_record_settles_it(world) -> None:
    _, posts, sink, deliveries, now = world
    intend(posts, now[0] - 3)  # written 3 s ago: that post may still be on the wire
    assert recheck(deliveries, posts) == []  # not yet
    posts.posted("task-1", "alert", "#cx-alerts", 0, int(now[0]), "C0CXALERTS", "7.000")  # its owner's record arrives
    now[0] += 15
    deliveries.release()
    assert sink.searches == []  # known without asking Slack


def test_old_intents_are_searched_for_in_one_search_per_channel_and_found_is_done(world) -> None:
    log, posts, sink, deliveries, now = world
    intend(posts, now[0] - 60)
    intend(posts, now[0] - 50, slot="task-2")
    sink.found["task-1"] = "9.000"
    outcomes = recheck(deliveries, posts, "task-1", "task-2")
    assert [(o.status, o.ts) for o in outcomes] == [("found", "9.000"), ("missing", None)]
    [search] = sink.searches  # one for both: the history API has a low rate limit
    assert (search.channel, search.slots) == ("C0CXALERTS", {"task-1", "task-2"})
    assert search.oldest <= now[0] - 60  # searched back to before the oldest intent
    assert posts.get("task-1").state == "posted" and posts.get("task-1").ts == "9.000"  # and recorded
    assert deliveries.found == 1 and not any(line.startswith("post ") for line in log)


def test_not_found_posts_again_and_without_the_search_it_posts_again_unasked(world) -> None:
    _, posts, sink, deliveries, now = world
    intend(posts, now[0] - 60)
    assert [o.status for o in recheck(deliveries, posts)] == ["missing"]
    deliveries.search = False
    sink.searches.clear()
    assert [o.status for o in recheck(deliveries, posts)] == ["missing"] and sink.searches == []


def test_a_missing_scope_turns_the_search_off_with_a_warning_that_says_what_to_grant(world, caplog) -> None:
    _, posts, sink, deliveries, now = world
    intend(posts, now[0] - 60)
    sink.refuse_search = "missing_scope"
    with caplog.at_level(logging.WARNING):
        assert [o.status for o in recheck(deliveries, posts)] == ["missing"]
    assert deliveries.search is False
    assert "channels:history, groups:history, channels:read and groups:read" in caplog.text


def test_a_reply_is_searched_in_its_thread_or_under_its_task_when_the_thread_was_not_known(world) -> None:
    _, posts, sink, deliveries, now = world
    posts.posted("task-1", "alert", "#cx-alerts", 0, int(now[0] - 90), "C0CXALERTS", "5.000")
    posts.intend("task-1/e-7", "reply", "C0CXALERTS", 0, int(now[0] - 60), thread_ts="5.000")
    posts.intend("task-2/e-8", "reply", "C0CXALERTS", 0, int(now[0] - 60))  # its parent was in flight then
    recheck(deliveries, posts, "task-1/e-7", "task-2/e-8")
    [search] = sink.searches
    assert search.threads == {"5.000": {"task-1/e-7"}}
    assert search.orphans == {"task-2/e-8": "task-2"}  # under task-2's alert if that made it, else at the top level


def test_old_records_are_expired_by_the_owner_of_their_partition_only(world) -> None:
    _, posts, _, _, now = world
    day = 86400
    posts.posted("old-mine", "alert", "#a", 1, int(now[0] - 31 * day), "C1", "1.0")
    posts.posted("old-theirs", "alert", "#a", 2, int(now[0] - 31 * day), "C1", "1.0")
    posts.posted("new-mine", "alert", "#a", 1, int(now[0] - day), "C1", "1.0")
    assert posts.expire(int(now[0]), 30 * day, partitions={1}) == 1
    assert set(posts.by_slot) == {"old-theirs", "new-mine"}
    assert posts.view.producer.sent[-1][1:] == (b"post|feedback|old-mine", None)  # a tombstone: compaction removes it


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future


def test_nothing_is_posted_while_the_group_membership_is_in_doubt(world) -> None:
    """A worker whose network stalled may have been evicted, its partitions redone by another worker that
    could not see intents not yet written: its posts wait until the coordinator answers (found by tests/faults)."""
    log, _, sink, deliveries, _ = world
    doubt = [True]
    deliveries.in_doubt = lambda: doubt[0]
    revoked = threading.Event()
    settled: list[Outcome] = []
    deliveries.post(alert("task-1"), ABANDON, settled.append, [Intent("task-1", "alert", "#cx-alerts", 0)])
    deliveries.post(alert("task-2"), revoked, settled.append, [Intent("task-2", "alert", "#cx-alerts", 1)])
    deliveries.release()
    assert log == []  # no intent either: a zombie's would only make the new owner search
    doubt[0] = False
    deliveries.release()
    deliveries.settle()
    assert [a.task_id for a in sink.posted] == ["task-1", "task-2"]

    log.clear()
    deliveries.post(alert("task-3"), ABANDON, settled.append, [Intent("task-3", "alert", "#cx-alerts", 0)])
    deliveries.post(alert("task-4"), revoked, settled.append, [Intent("task-4", "alert", "#cx-alerts", 1)])
    deliveries.flush = lambda: doubt.__setitem__(0, True)  # the flush itself outlasts half a session
    deliveries.release()
    assert log == ["posting task-3", "posting task-4"] and len(sink.posted) == 2  # intents written, posts held
    revoked.set()
    deliveries.forget(revoked)  # the coordinator answered: partition 1 went to another worker
    doubt[0] = False
    deliveries.release()
    deliveries.settle()
    assert [a.task_id for a in sink.posted] == ["task-1", "task-2", "task-3"]
    assert [o.status for o in settled] == ["sent", "sent", "sent"]


def test_a_digest_held_while_in_doubt_is_given_up_with_the_partitions(world) -> None:
    log, _, sink, deliveries, _ = world
    doubt = [False]
    deliveries.in_doubt = lambda: doubt[0]
    deliveries.flush = lambda: doubt.__setitem__(0, True)
    intents = [Intent(f"task-{n}", "digest", "#cx-alerts", n) for n in range(2)]
    deliveries.post(alert(""), deliveries.stopping, lambda _: None, intents)  # a digest: tied to no one partition
    deliveries.release()
    deliveries.forget(threading.Event())  # eviction confirmed: every partition is given up
    doubt[0] = False
    deliveries.release()
    assert sink.posted == [] and deliveries.pending == 0
