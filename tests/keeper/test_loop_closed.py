"""Closing the loop: a resolution asks the customer again; their next answer closes or reopens the task.

Three scripted customer journeys, each driven as a helpdesk would (actions on the actions topic) and
as a survey tool would (the follow-up answer on the feedback topic, naming the task): recovered, still
unhappy (reopened), and no answer within a short recovery window. In-process (tests/harness.py): the
worker as service.py builds it, posting to the fake Slack over HTTP, on fake Kafka.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import event_bytes, wait_for
from tests.fake_slack import FakeSlack
from tests.harness import Harness
from worker.tasks import task_id_for

RULES = """
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}, customer.segment: {ne: trial}}
    alert: {channel: "#cx-alerts"}
    followup: {owner: cx-team, due_in: 1h, recheck: csat, recovery_window: 14d}
  - id: trial-detractor
    when: {survey: nps, score: {lte: 6}, customer.segment: trial}
    alert: {channel: "#cx-alerts"}
    followup: {owner: cx-team, due_in: 1h, recheck: nps, recovery_window: 4s}
"""
API = {"source": "api", "id": "zendesk", "name": "Zendesk"}


@pytest.fixture
def worker(start_harness: Callable[..., Harness]) -> Harness:
    """One worker with this file's rules, holding every partition, its clock running."""
    return start_harness(RULES)


def followups(worker: Harness, task: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in worker.records(worker.settings.followup_topic) if r["task_id"] == task and r["type"] == kind]


def settled(worker: Harness) -> list[dict[str, Any]]:
    """Every lifecycle record, once every answer and action is handled and committed, and a keeper tick later."""
    wait_for(lambda: worker.consumer.all_committed("fb") and worker.consumer.all_committed("actions"), 30, "everything committed")
    time.sleep(1.5)  # the keeper's timers run once a second: nothing more may appear
    return worker.records(worker.settings.followup_topic)


def act(worker: Harness, task: str, action: str, **fields: Any) -> None:
    body = {"action": action, "task_id": task, "actor": API} | fields
    worker.send(json.dumps(body).encode(), key=task.encode(), topic="actions")


def answer(worker: Harness, event_id: str, customer: dict[str, Any], **fields: Any) -> None:
    at = worker.clock().isoformat()
    worker.send(event_bytes(event_id=event_id, occurred_at=at, customer=customer, **fields), key=customer["id"].encode())


def test_three_customer_journeys_recovered_reopened_and_no_response(worker: Harness, fake_slack: FakeSlack) -> None:
    happy = {"id": "c-happy", "name": "Happy Hats", "segment": "smb", "monthly_value": 300.0}
    grumpy = {"id": "c-grumpy", "name": "Grumpy Gears", "segment": "smb", "monthly_value": 500.0}
    quiet = {"id": "c-quiet", "name": "Quiet Quilts", "segment": "trial", "monthly_value": 20.0}
    journeys = {name: (customer, task_id_for(f"{name}-1")) for name, customer in (("happy", happy), ("grumpy", grumpy), ("quiet", quiet))}
    for name, (customer, _) in journeys.items():
        answer(worker, f"{name}-1", customer, survey="nps", score=2, comment="The parcel never came")
    for name, (_, task) in journeys.items():
        wait_for(lambda task=task: followups(worker, task, "followup.opened"), 30, f"{name}'s task opened")
        act(worker, task, "acknowledge")
        act(worker, task, "resolve", root_cause="shipping-delay", resolution="Re-sent the parcel", customer_contacted=True)

    # Each resolution asks its customer again, once, with the rule's survey.
    requests = wait_for(
        lambda: (found := worker.records(worker.settings.survey_request_topic)) and len(found) >= 3 and found, 30, "three survey requests"
    )
    by_task = {r["task_id"]: r for r in requests}
    assert len(requests) == 3 and set(by_task) == {task for _, task in journeys.values()}
    for customer, task in journeys.values():
        request = by_task[task]
        assert request["type"] == "survey.requested" and request["reason"] == "followup"
        assert request["customer"] == customer["id"] and request["key"] == customer["id"].encode()
        assert request["survey"] == ("nps" if customer is quiet else "csat")

    # Recovered: a happy CSAT answer naming the task closes it.
    happy_task = journeys["happy"][1]
    answer(worker, "happy-2", happy, survey="csat", score=5, attributes={"task_id": happy_task})
    closed = wait_for(lambda: followups(worker, happy_task, "followup.closed"), 30, "the happy customer's task closed")
    assert closed[0]["outcome"] == "recovered" and closed[0]["answer"]["event_id"] == "happy-2"

    # Still unhappy: the answer (naming no task) reopens it, in the alert's thread, with the timers restarted; no second task.
    grumpy_task = journeys["grumpy"][1]
    answer(worker, "grumpy-2", grumpy, survey="csat", score=1, comment="Still nothing <!channel>")
    reopened = wait_for(lambda: followups(worker, grumpy_task, "followup.reopened"), 30, "the grumpy task reopened")
    assert reopened[0]["reason"] == "still_unhappy" and reopened[0]["answer"]["event_id"] == "grumpy-2"
    alert = next(
        m
        for m in fake_slack.messages
        if m["metadata"]["event_type"] == "feedback_alert" and m["metadata"]["event_payload"]["task_id"] == grumpy_task
    )
    note = wait_for(
        lambda: [m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_task_reopened"], 30, "the reopening in Slack"
    )
    assert len(note) == 1 and note[0]["thread_ts"] == alert["ts"]
    assert "still unhappy" in note[0]["text"] and "<!channel>" not in json.dumps(note[0]["blocks"])
    assert "&lt;!channel&gt;" in json.dumps(note[0]["blocks"])

    # No response: the trial customer's four-second window ends without an answer (the clock moved on past it).
    quiet_task = journeys["quiet"][1]
    worker.advance(timedelta(seconds=4))
    closed = wait_for(lambda: followups(worker, quiet_task, "followup.closed"), 30, "the quiet task closed")
    assert closed[0]["outcome"] == "no_response" and closed[0].get("answer") is None

    # Everything settled: one task per journey, each closed or reopened once, and the reopened one open again.
    everything = settled(worker)
    assert sorted(r["task_id"] for r in everything if r["type"] == "followup.opened") == sorted(t for _, t in journeys.values())
    assert [r["task_id"] for r in everything if r["type"] in ("followup.closed", "followup.reopened")] in (
        [happy_task, grumpy_task, quiet_task],
        [happy_task, quiet_task, grumpy_task],
    )
    assert not [r for r in everything if r["type"] == "followup.escalated"]


def test_an_unhappy_answer_joins_the_customers_unresolved_task_and_a_late_answer_closes_nothing(
    worker: Harness, fake_slack: FakeSlack
) -> None:
    customer = {"id": "c-again", "name": "Again Apparel", "segment": "smb", "monthly_value": 80.0}
    task = task_id_for("again-1")
    answer(worker, "again-1", customer, survey="nps", score=3)
    wait_for(lambda: followups(worker, task, "followup.opened"), 30, "the task opened")
    # Not resolved: a second unhappy answer joins it (a reply in its thread), a happy one closes nothing.
    answer(worker, "again-2", customer, survey="nps", score=1, comment="Hello?")
    answer(worker, "again-3", customer, survey="csat", score=5)
    updated = wait_for(lambda: followups(worker, task, "followup.updated"), 30, "the answer joined the task")
    assert updated[0]["event_id"] == "again-2" and updated[0]["answers_in_episode"] == 2
    alert = wait_for(lambda: [m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_alert"], 30, "the alert")
    reply = wait_for(lambda: [m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_alert_reply"], 30, "the reply")
    assert len(alert) == 1 and reply[0]["thread_ts"] == alert[0]["ts"]
    everything = settled(worker)
    assert [r["type"] for r in everything] == ["followup.opened", "followup.updated"]
    assert worker.records(worker.settings.survey_request_topic) == []


THROTTLED = """
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    alert: {channel: "#cx-alerts"}
    throttle: {key: customer.id, window: 7d}
    followup: {owner: cx-team, due_in: 1h, recheck: none}
"""


def test_once_its_task_is_resolved_a_throttle_episode_is_over_and_the_next_detractor_opens_a_task(
    start_harness: Callable[..., Harness],
) -> None:
    worker = start_harness(THROTTLED)
    customer = {"id": "c-thr", "name": "Throttle Toys", "segment": "smb"}
    first, second = task_id_for("thr-1"), task_id_for("thr-3")
    answer(worker, "thr-1", customer, survey="nps", score=2)
    answer(worker, "thr-2", customer, survey="nps", score=3)  # joins the episode's task
    wait_for(lambda: followups(worker, first, "followup.updated"), 30, "the repeat joined the task")
    act(worker, first, "resolve", root_cause="other", resolution="Called them")
    wait_for(lambda: followups(worker, first, "followup.resolved"), 30, "the task resolved")
    answer(worker, "thr-3", customer, survey="nps", score=1)  # no follow-up survey: an unhappy answer anew
    wait_for(lambda: followups(worker, second, "followup.opened"), 30, "a new task for the new answer")
    everything = settled(worker)
    assert [(r["type"], r["task_id"]) for r in everything] == [
        ("followup.opened", first),
        ("followup.updated", first),
        ("followup.resolved", first),
        ("followup.opened", second),
    ]
    assert worker.records(worker.settings.survey_request_topic) == [], "recheck: none asks nobody"
