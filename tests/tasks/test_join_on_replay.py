"""A replayed answer takes the way it took before: alone, or in the thread of the customer's task.

Two unhappy answers of one customer in one poll: the second opens its own task (the first's
was not applied yet). Replayed after a crash, the first must not join the second's task: its
alert is in Slack already, and a thread reply would show it twice (found by
tests/e2e/test_exactly_once.py under twenty kills).
"""

from __future__ import annotations

import json
from datetime import timedelta

from kafka import TopicPartition

from tests.conftest import wait_for
from tests.harness import NOW, Harness
from worker.delivery import Form, Post, PostState, alert_slot, answer_slot
from worker.events import FeedbackEvent
from worker.tasks import open_task, opened, task_id_for

FB = TopicPartition("fb", 0)


def answer(event_id: str, survey: str, score: int) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "occurred_at": (NOW - timedelta(minutes=1)).isoformat(),
            "survey": survey,
            "score": score,
            "customer": {"id": "c-7", "segment": "smb", "monthly_value": 100.0},
        }
    ).encode()


def test_a_replayed_answer_whose_alert_is_in_slack_joins_no_task_opened_since() -> None:
    harness = Harness()
    harness.consumer.append("fb", None, answer("e-1", "nps", 2), 0)
    harness.consumer.append("fb", None, answer("e-2", "csat", 1), 0)  # same poll: e-1's task is not applied yet
    harness.start([FB, TopicPartition("actions", 0)])
    worker = harness.worker
    wait_for(
        lambda: len(worker.cases.by_id) == 2 and harness.consumer.committed.get(FB) == 2,
        10,
        "both answers alone, as two tasks, and committed",
    )
    posted = list(harness.sink.posted)
    assert len(posted) == 2 and worker.stats.joined == 0

    harness.consumer.append("fb", None, answer("e-1", "nps", 2), 0)  # redelivered after a crash
    harness.consumer.append("fb", None, answer("e-3", "nps", 1), 0)  # a new unhappy answer does join
    wait_for(lambda: harness.consumer.committed.get(FB) == 4, 10, "the replay and the new answer committed")
    harness.finish()

    assert worker.stats.replayed == 1, "e-1's alert is on record: nothing posted for it again"
    assert worker.stats.joined == 1 and len(harness.sink.posted) == 3, "e-3 replies in a thread; e-1 posts nothing"
    assert len(worker.cases.by_id) == 2


def test_a_replayed_answer_whose_reply_is_in_slack_stays_a_reply_though_its_own_task_was_opened_before() -> None:
    """Three lives of one answer: opened its own task (its digest not posted yet), crashed; replayed and joined the
    customer's task (the reply reached Slack), crashed; replayed again: it must post nothing, not a digest line."""
    harness = Harness()
    worker = harness.worker
    now = int(NOW.timestamp())
    for event_id, survey, score, rule_id in (("e-1", "nps", 2, "nps-detractor"), ("e-5", "csat", 1, "low-csat")):
        event = FeedbackEvent.model_validate_json(answer(event_id, survey, score))
        rule = next(r for r in worker.rules.rules if r.id == rule_id)
        worker.cases.save(opened(open_task(event, rule.id, [rule.id], rule.severity, rule.followup, NOW), None, rule.followup.due_in))
    first = task_id_for("e-1")
    worker.outbox.posts.put(alert_slot(first), Post(PostState.POSTED, Form.ALONE, "#cx-alerts", 0, now, "C0ALERTS", "1.0"))
    worker.outbox.posts.put(
        answer_slot(first, "e-5"), Post(PostState.POSTED, Form.REPLY, "#cx-alerts", 0, now, "C0ALERTS", "2.0", thread_ts="1.0")
    )

    harness.consumer.append("fb", None, answer("e-5", "csat", 1), 0)
    harness.start([FB, TopicPartition("actions", 0)])
    wait_for(lambda: harness.consumer.committed.get(FB) == 1, 10, "the replay committed")
    harness.finish()
    assert harness.sink.posted == [] and worker.stats.replayed == 1


def test_a_replayed_answer_whose_reply_is_in_slack_stays_a_reply_though_an_evicted_replica_intended_it_alone() -> None:
    """A replica evicted from the group (its network stalled) writes its intent to post the answer alone late, after
    the answer's new owner replied it in the customer's task's thread. Replayed once more, the answer must post
    nothing: the reply Slack has beats the intent it may not have (found by tests/faults: answers posted twice)."""
    harness = Harness()
    worker = harness.worker
    now = int(NOW.timestamp())
    event = FeedbackEvent.model_validate_json(answer("e-1", "nps", 2))
    rule = next(r for r in worker.rules.rules if r.id == "nps-detractor")
    worker.cases.save(opened(open_task(event, rule.id, [rule.id], rule.severity, rule.followup, NOW), None, rule.followup.due_in))
    first = task_id_for("e-1")
    worker.outbox.posts.put(alert_slot(first), Post(PostState.POSTED, Form.ALONE, "#cx-alerts", 0, now, "C0ALERTS", "1.0"))
    worker.outbox.posts.put(
        answer_slot(first, "e-5"), Post(PostState.POSTED, Form.REPLY, "#cx-alerts", 0, now, "C0ALERTS", "2.0", thread_ts="1.0")
    )
    # the evicted replica's, arrived late
    worker.outbox.posts.put(alert_slot(task_id_for("e-5")), Post(PostState.OWED, Form.ALONE, "#cx-alerts", 0, now - 20))

    harness.consumer.append("fb", None, answer("e-5", "nps", 1), 0)
    harness.start([FB, TopicPartition("actions", 0)])
    wait_for(lambda: harness.consumer.committed.get(FB) == 1, 10, "the replay committed")
    harness.finish()
    assert harness.sink.posted == [] and worker.stats.replayed == 1
