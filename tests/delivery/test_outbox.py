"""The outbox, in-process: what is owed is in Kafka before it is posted, the events' offsets are released then
(not when Slack answers), Slack's answers are recorded, and a partition's new owner posts what it still owes,
searching the channel first.

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
from kafka import TopicPartition

from tests.metrics.test_windows_state import Fake
from worker.alerting import Alert
from worker.delivery import Form, Outbox, Outcome, Owed, Place, Post, Posts, PostState, Search, Slot, alert_slot, answer_slot, metric_slot
from worker.stream.checkpoint import Checkpoint, Hold
from worker.stream.counters import Stats
from worker.stream.state import StateView

ABANDON = threading.Event()


class ScriptedSink:
    """Answers posts with ts 1.000, 2.000, ...; searches with what `found` says; records the order of calls."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.found: dict[str, str] = {}  # slot -> ts of a message naming it
        self.searches: list[Search] = []
        self.refuse_search: str | None = None
        self.posted: list[Alert] = []

        self.refuse_post: str | None = None
        self.later: list[Future[Outcome]] | None = None  # set: posts are answered when the test says

    def submit(self, alert: Alert, abandon: threading.Event, hold: Any = None) -> Future[Outcome]:
        self.log.append(f"post {alert.task_id}")
        self.posted.append(alert)
        if self.refuse_post:
            return _done(Outcome("undeliverable", reason=self.refuse_post))
        if self.later is not None:
            self.later.append(Future())
            return self.later[-1]
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

    def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        super().send(topic, key, value)
        state = json.loads(value)["state"] if value else "tombstone"
        if key.decode().startswith("post|"):
            self.log.append(f"{state} {key.decode().split('|', 2)[2]}")

    def flush(self) -> None:
        self.log.append("flush")


class Letters:
    topic = "dlq"

    def __init__(self) -> None:
        self.sent: list[tuple[Any, str]] = []

    def undeliverable(self, record: Any, reason: str, alert: dict[str, Any]) -> None:
        self.sent.append((record, reason))


@pytest.fixture
def world() -> tuple[list[str], Posts, ScriptedSink, Outbox, list[float]]:
    log: list[str] = []
    producer = RecordingProducer(log)
    posts = Posts(StateView("state", "feedback", Fake(), producer))
    sink = ScriptedSink(log)
    now = [1_000_000.0]
    outbox = Outbox(sink, posts, producer.flush, Letters(), Stats(), clock=lambda: now[0], grace_s=15)  # type: ignore[arg-type]
    return log, posts, sink, outbox, now


TP = TopicPartition("feedback", 0)


def alert(task_id: str) -> Alert:
    return Alert(channel="#cx-alerts", text="x", blocks=[], metadata={}, event_id="e", task_id=task_id, rule_id="r", severity="high")


def held(offset: int = 0) -> tuple[Checkpoint, Hold]:
    checkpoint = Checkpoint(None, None, 1.0)  # type: ignore[arg-type]
    state = checkpoint.seen(TP, offset)
    return checkpoint, checkpoint.hold(state, offset)


def post(outbox: Outbox, task: str, hold: Hold | None = None, tp: TopicPartition | None = TP, **kwargs: Any) -> Future[Outcome] | None:
    return outbox.post_once(f"alert {task}", [Place(alert_slot(task), tp, hold)], "#cx-alerts", lambda: alert(task), **kwargs)


def test_what_is_owed_is_flushed_before_anything_is_posted_and_the_offsets_go_free_then(world) -> None:
    log, posts, sink, outbox, _ = world
    sink.later = []  # Slack has not answered yet
    checkpoint, hold = held()
    post(outbox, "task-1", hold)
    post(outbox, "task-2")
    assert log == ["posting task-1", "posting task-2"] and checkpoint.waiting == 1  # nothing leaves before release()
    outbox.release()
    assert log[2:] == ["flush", "post task-1", "post task-2"]
    assert checkpoint.waiting == 0, "the event is done once what it owes is in Kafka: Slack's answer is not waited for"
    assert posts.get(alert_slot("task-1")).is_owed and outbox.owed("#cx-alerts") == 2 and posts.owed["#cx-alerts"] == 2
    for n, future in enumerate(sink.later):
        future.set_result(Outcome("sent", channel="C0CXALERTS", ts=f"{n}.000"))
    outbox.settle()
    assert log[-2:] == ["posted task-1", "posted task-2"]
    assert posts.get(alert_slot("task-1")).is_posted and posts.get(alert_slot("task-1")).channel_id == "C0CXALERTS"
    assert outbox.owed("#cx-alerts") == 0 and posts.owed["#cx-alerts"] == 0
    assert posts.channel_id("#cx-alerts") == "C0CXALERTS"  # learned: a later search can use it
    assert [a.metadata["event_payload"]["slots"] for a in sink.posted] == [["task-1"], ["task-2"]]  # each names its slot


def test_the_owed_record_carries_the_message_so_another_worker_can_post_it(world) -> None:
    _, posts, _, outbox, _ = world
    post(outbox, "task-1")
    record = posts.get(alert_slot("task-1"))
    assert record.message is not None and record.message["text"] == "x" and record.topic == "feedback"
    assert record.message["metadata"]["event_payload"]["slots"] == ["task-1"]


def test_a_slot_on_record_is_never_posted_again_and_a_replay_learns_where_it_is(world) -> None:
    log, posts, sink, outbox, _ = world
    post(outbox, "task-1")
    outbox.release()
    outbox.settle()
    checkpoint, hold = held(5)
    seen: list[Outcome] = []
    assert post(outbox, "task-1", hold, on_sent=seen.append) is None  # a replay of the same event
    assert len(sink.posted) == 1 and checkpoint.waiting == 0  # nothing to post; its offset is free at once
    assert [(o.status, o.ts) for o in seen] == [("found", posts.get(alert_slot("task-1")).ts)]


def test_a_post_slack_refuses_for_good_is_dead_lettered_and_never_tried_again(world) -> None:
    _, posts, sink, outbox, _ = world
    sink.refuse_post = "channel_not_found"
    post(outbox, "task-1")
    outbox.release()
    outbox.settle()
    assert posts.get(alert_slot("task-1")).state is PostState.DEAD
    assert [reason for _, reason in outbox.dead_letters.sent] == ["channel_not_found"]
    sink.refuse_post = None
    assert post(outbox, "task-1") is None
    outbox.take_over([TP], lambda tp: threading.Event(), no_lines)
    assert len(sink.posted) == 1


def test_a_template_error_is_dead_lettered_with_the_reason_and_frees_the_offset(world) -> None:
    from worker.alerting import TemplateRenderError

    _, posts, sink, outbox, _ = world
    checkpoint, hold = held()

    def broken() -> Alert:
        raise TemplateRenderError("detractor.slack.j2 line 3: 'comment' is undefined")

    assert outbox.post_once("alert", [Place(alert_slot("task-1"), TP, hold, "the record")], "#cx", broken) is None
    assert outbox.dead_letters.sent == [("the record", "template error: detractor.slack.j2 line 3: 'comment' is undefined")]
    assert checkpoint.waiting == 0 and posts.get(alert_slot("task-1")) is None and sink.posted == []


def test_a_digest_fills_one_slot_per_task_with_the_same_message(world) -> None:
    log, posts, _, outbox, _ = world
    places = [Place(alert_slot(f"task-{n}"), TopicPartition("feedback", n % 3)) for n in range(5)]
    for place in places:  # batched: owed as lines from the moment they are batched
        outbox.owe_line(place, "#cx-alerts", Form.DIGEST, {"event_id": "e"}, "r")
    settled: list[Outcome] = []
    outbox.post_once("digest", places, "#cx-alerts", lambda: alert(""), kind=Form.DIGEST, on_sent=settled.append)
    outbox.release()
    outbox.settle()
    assert sum(line.startswith("post ") for line in log) == 1  # one message
    [outcome] = settled
    records = [posts.get(alert_slot(f"task-{n}")) for n in range(5)]
    assert {(r.state, r.kind, r.ts) for r in records} == {(PostState.POSTED, Form.DIGEST, outcome.ts)}
    assert [r.partition for r in records] == [0, 1, 2, 0, 1]  # each kept by the owner of its own event


def test_our_own_intent_read_back_after_slack_answered_never_steps_back(world) -> None:
    _, posts, _, outbox, _ = world
    post(outbox, "task-1")
    outbox.release()
    outbox.settle()
    intent, posted = [(k, v) for _, k, v in posts.view.producer.sent]
    for key, value in (intent, posted, intent):  # the state topic replays our records; the intent again last
        posts.view._apply(key.decode(), value)
    assert posts.get(alert_slot("task-1")).is_posted
    posts.view._apply(intent[0].decode(), None)  # a tombstone does remove it
    assert posts.get(alert_slot("task-1")) is None


def owe(
    posts: Posts, at: float, slot: Slot | None = None, kind: Form = Form.ALONE, thread_ts: str | None = None, topic: str | None = "feedback"
) -> None:
    """A record another worker (or this one before a crash) left owed."""
    posts.put(alert_slot("task-0"), Post(PostState.POSTED, Form.ALONE, "#cx-alerts", 0, int(at), "C0CXALERTS", "0.5"))
    slot = slot or alert_slot("task-1")
    message = {"text": f"owed {slot.key}", "blocks": [], "metadata": {"event_payload": {"slots": [slot.key]}}, "task_id": slot.task_id}
    posts.put(slot, Post(PostState.OWED, kind, "#cx-alerts", 0, int(at), thread_ts=thread_ts, topic=topic, message=message))


def no_lines(line: Owed) -> None:
    raise AssertionError(f"no answer owed a line in a summary was expected, got {line}")


def take_over(outbox: Outbox, now: list[float] | None = None) -> None:
    """A new owner takes the partition over; `now`: then one Slack request's time passes (the grace)."""
    outbox.take_over([TP], lambda tp: ABANDON, no_lines)
    if now is not None:
        outbox.release()
        assert outbox.lookups.sink.searches == [], "nothing is looked for while the previous owner's post may still land"
        now[0] += 15
    outbox.release()  # once per batch of events: the searches due, together
    outbox.settle()
    outbox.release()  # what was missing goes out with the next batch
    outbox.settle()


def test_a_taken_over_record_waits_for_the_previous_owner_and_its_posted_record_settles_it(world) -> None:
    _, posts, sink, outbox, now = world
    owe(posts, now[0] - 600)  # owed for ten minutes (Slack down): the previous owner retried it until it lost the partition
    take_over(outbox)
    assert sink.searches == [] and sink.posted == []  # not yet: its last attempt may still be on the wire
    posts.put(alert_slot("task-1"), Post(PostState.POSTED, Form.ALONE, "#cx-alerts", 0, int(now[0]), "C0CXALERTS", "7.000"))
    now[0] += 15
    outbox.release()
    outbox.settle()
    assert sink.searches == [] and sink.posted == []  # known without asking Slack


def test_a_new_owner_searches_old_records_in_one_search_per_channel_and_posts_only_what_is_missing(world) -> None:
    log, posts, sink, outbox, now = world
    owe(posts, now[0] - 60)
    owe(posts, now[0] - 50, slot=alert_slot("task-2"))
    sink.found["task-1"] = "9.000"
    take_over(outbox, now)
    [search] = sink.searches  # one for both: the history API has a low rate limit
    assert (search.channel, search.slots) == ("C0CXALERTS", {"task-1", "task-2"})
    assert search.oldest <= now[0] - 60  # searched back to before the oldest record
    assert posts.get(alert_slot("task-1")).is_posted and posts.get(alert_slot("task-1")).ts == "9.000"  # and recorded
    assert outbox.lookups.found == 1
    assert [a.text for a in sink.posted] == ["owed task-2"], "the missing one is posted from its record"
    assert posts.get(alert_slot("task-2")).is_posted


def test_without_the_search_a_new_owner_posts_what_is_owed_unasked(world) -> None:
    _, posts, sink, outbox, now = world
    owe(posts, now[0] - 60)
    outbox.lookups.search = False
    take_over(outbox, now)
    assert sink.searches == [] and [a.text for a in sink.posted] == ["owed task-1"]


def test_a_missing_scope_turns_the_search_off_with_a_warning_that_says_what_to_grant(world, caplog) -> None:
    _, posts, sink, outbox, now = world
    owe(posts, now[0] - 60)
    sink.refuse_search = "missing_scope"
    with caplog.at_level(logging.WARNING):
        take_over(outbox, now)
    assert outbox.lookups.search is False and len(sink.posted) == 1
    assert "channels:history, groups:history, channels:read and groups:read" in caplog.text


def test_a_reply_is_searched_in_its_thread_or_under_its_task_when_the_thread_was_not_known(world) -> None:
    _, posts, sink, outbox, now = world
    posts.put(alert_slot("task-1"), Post(PostState.POSTED, Form.ALONE, "#cx-alerts", 0, int(now[0] - 90), "C0CXALERTS", "5.000"))
    owe(posts, now[0] - 60, answer_slot("task-1", "e-7"), Form.REPLY, thread_ts="5.000")
    owe(posts, now[0] - 60, answer_slot("task-2", "e-8"), Form.REPLY)  # its parent was in flight then
    take_over(outbox, now)
    [search] = sink.searches
    assert search.threads == {"5.000": {"task-1/e-7"}}
    assert search.orphans == {"task-2/e-8": "task-2"}  # under task-2's alert if that made it, else at the top level


def owe_line(posts: Posts, task: str, partition: int, at: float) -> None:
    """An answer another worker left owed a line in a summary."""
    item = {"event": {"event_id": f"e-{task}"}, "rule": "detractor"}
    posts.put(alert_slot(task), Post(PostState.OWED, Form.SUMMARY, "#cx-alerts", partition, int(at), topic="feedback", item=item))


def test_a_new_owner_lists_again_the_answers_owed_a_line_in_a_summary_that_slack_does_not_have(world) -> None:
    """The previous owner may have posted the summary and lost its network before its POSTED records went out (found by
    tests/faults): each line is looked for first, like a message, and only the missing ones are listed again."""
    _, posts, sink, outbox, now = world
    owe_line(posts, "task-3", 0, now[0])
    owe_line(posts, "task-4", 1, now[0])  # another partition's
    owe_line(posts, "task-5", 0, now[0])
    sink.found["task-5"] = "8.000"  # in a summary the previous owner posted
    relisted: list[Owed] = []
    outbox.take_over([TP], lambda tp: ABANDON, relisted.append)  # partition 0 only
    outbox.release()
    outbox.settle()
    assert relisted == [] and sink.searches == [], "not before the previous owner's post can have landed"
    now[0] += 15
    outbox.release()
    outbox.settle()
    [line] = relisted
    assert (line.slot, line.rule_id, line.event["event_id"], line.channel) == (alert_slot("task-3"), "detractor", "e-task-3", "#cx-alerts")
    [search] = sink.searches
    assert search.slots == {"task-3", "task-5"}
    assert posts.get(alert_slot("task-5")).is_posted and posts.get(alert_slot("task-5")).ts == "8.000"
    outbox.take_over([TP], lambda tp: ABANDON, relisted.append)
    now[0] += 15
    outbox.release()
    outbox.settle()
    assert len(relisted) == 1, "taken over once"


def test_a_lone_slot_tied_to_no_partition_is_looked_for_before_it_is_posted_again(world) -> None:
    """A metric alert whose post was under way at a crash: the rule still fires, and asks again."""
    _, posts, sink, outbox, now = world
    owe(posts, now[0] - 60, metric_slot("nps|overall@1"), topic=None)
    sink.found["metric:nps|overall@1"] = "4.000"
    future = outbox.post_once("metric alert", [Place(metric_slot("nps|overall@1"))], "#cx-alerts", lambda: alert(""))
    now[0] += 15
    outbox.release()
    outbox.settle()
    assert future is not None and future.result().status == "found" and sink.posted == []


def test_old_settled_records_are_expired_by_the_owner_of_their_partition_and_owed_ones_never(world) -> None:
    _, posts, _, _, now = world
    day = 86400
    old = int(now[0] - 31 * day)
    posts.put(alert_slot("old-mine"), Post(PostState.POSTED, Form.ALONE, "#a", 1, old, "C1", "1.0"))
    posts.put(alert_slot("old-owed"), Post(PostState.OWED, Form.ALONE, "#a", 1, old, topic="feedback"))
    posts.put(alert_slot("old-theirs"), Post(PostState.POSTED, Form.ALONE, "#a", 2, old, "C1", "1.0"))
    posts.put(alert_slot("new-mine"), Post(PostState.POSTED, Form.ALONE, "#a", 1, int(now[0] - day), "C1", "1.0"))
    assert posts.expire(int(now[0]), 30 * day, partitions={1}) == 1
    assert set(posts.by_slot) == {"old-owed", "old-theirs", "new-mine"}
    assert posts.view.producer.sent[-1][1:] == (b"post|feedback|old-mine", None)  # a tombstone: compaction removes it


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future


def test_nothing_is_posted_while_the_group_membership_is_in_doubt(world) -> None:
    """A worker whose network stalled may have been evicted, its partitions redone by another worker that
    could not see intents not yet written: its posts wait until the coordinator answers (found by tests/faults)."""
    log, _, sink, outbox, _ = world
    doubt = [True]
    outbox.in_doubt = lambda: doubt[0]
    other = TopicPartition("feedback", 1)
    checkpoint, hold = held()
    revoked = checkpoint.hold(checkpoint.seen(other, 0), 0)
    settled: list[Outcome] = []
    post(outbox, "task-1", hold, on_sent=settled.append)
    post(outbox, "task-2", revoked, tp=other, on_sent=settled.append)
    log.clear()  # records are queued in the producer, and not flushed
    outbox.release()
    assert log == [] and checkpoint.waiting == 2  # no flush, no post, offsets held: a zombie's records only make the new owner search
    doubt[0] = False
    outbox.release()
    outbox.settle()
    assert [a.task_id for a in sink.posted] == ["task-1", "task-2"] and checkpoint.waiting == 0

    log.clear()
    post(outbox, "task-3", on_sent=settled.append)
    post(outbox, "task-4", checkpoint.hold(checkpoint.seen(other, 1), 1), tp=other, on_sent=settled.append)
    outbox.flush = lambda: doubt.__setitem__(0, True)  # the flush itself outlasts half a session
    outbox.release()
    assert log == ["posting task-3", "posting task-4"] and len(sink.posted) == 2  # records written, posts held
    checkpoint.partitions[other].abandon.set()
    outbox.forget([other], [checkpoint.partitions[other].abandon])  # the coordinator answered: partition 1 went to another worker
    doubt[0] = False
    outbox.release()
    outbox.settle()
    assert [a.task_id for a in sink.posted] == ["task-1", "task-2", "task-3"]
    assert [o.status for o in settled] == ["sent", "sent", "sent"]


def test_a_digest_held_while_in_doubt_is_given_up_with_the_partitions(world) -> None:
    log, _, sink, outbox, _ = world
    doubt = [False]
    outbox.in_doubt = lambda: doubt[0]
    outbox.flush = lambda: doubt.__setitem__(0, True)
    places = [Place(alert_slot(f"task-{n}"), TopicPartition("feedback", n)) for n in range(2)]
    for place in places:
        outbox.owe_line(place, "#cx-alerts", Form.DIGEST, {}, "r")
    outbox.post_once("digest", places, "#cx-alerts", lambda: alert(""), kind=Form.DIGEST)  # tied to no one partition
    outbox.release()
    outbox.forget([p.tp for p in places], [threading.Event()])  # eviction confirmed: every partition is given up
    doubt[0] = False
    outbox.release()
    assert sink.posted == [] and outbox.pending == 0


def reply_under_taken_over_alert(
    posts: Posts, outbox: Outbox, now: list[float], abandon: threading.Event
) -> tuple[Future[Outcome], Future[Outcome]]:
    """task-1's alert owed by a worker that died, taken over (its lookup not due yet), and a reply under it: both futures."""
    owe(posts, now[0] - 60)
    outbox.take_over([TP], lambda tp: abandon, no_lines)
    parent = outbox.in_flight(alert_slot("task-1"))
    assert parent is not None and not parent.done()
    reply = outbox.post_once(
        "reply", [Place(answer_slot("task-1", "e-9"), TP, None)], "#cx-alerts", lambda: alert("task-1"), kind=Form.REPLY, parent=parent
    )
    assert reply is not None
    outbox.release()
    return parent, reply


def test_a_reply_to_an_alert_still_being_looked_up_reaches_the_sink_only_once_its_parent_is_posted(world) -> None:
    """After a takeover, a throttled repeat replies under an alert whose lookup is not due yet. The reply must not be
    handed to the sink before its parent is posted: a sink thread would wait there for the parent, and with enough such
    replies every thread waits while the parent's search queues behind them (the kill -9 burst test stalled so)."""
    _, posts, sink, outbox, now = world
    parent, reply = reply_under_taken_over_alert(posts, outbox, now, ABANDON)
    assert sink.posted == [], "the reply waits off the sink while its parent is looked up"
    now[0] += 15  # the lookup is due: searched, missing, posted; then the reply
    outbox.release()
    outbox.settle()
    outbox.release()
    outbox.settle()
    assert [a.text for a in sink.posted] == ["owed task-1", "x"], "the parent, then its reply"
    assert sink.posted[1].parent is parent and reply.done()


def test_a_reply_parked_on_a_lookup_given_up_with_its_partition_is_given_up_too(world) -> None:
    _, posts, sink, outbox, now = world
    lost = threading.Event()
    parent, reply = reply_under_taken_over_alert(posts, outbox, now, lost)
    lost.set()
    outbox.forget([TP], [lost])  # revoked before the lookup was due
    assert parent.done() and parent.result().status == "abandoned"
    assert reply.done(), "not parked for ever: the sink got it, and gives it up (its partition is gone)"
