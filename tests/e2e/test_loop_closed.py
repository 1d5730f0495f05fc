"""Closing the loop on the broker: a resolution asks the customer again; their next answer closes or reopens the task.

Three scripted customer journeys, each driven as a helpdesk would (actions on the topic) and
as a survey tool would (the follow-up answer on the feedback topic, naming the task):
recovered, still unhappy (reopened), and no answer within a short recovery window.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WorkerProcess, event_bytes, produce, read_topic, wait_for
from tests.fake_slack import FakeSlack
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
def start_rules_worker(start_worker: Callable[..., WorkerProcess], tmp_path: Path) -> None:
    """One worker with this file's rules, holding every partition."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    start_worker("worker", RULES_PATH=str(rules)).wait_assigned()


def now() -> str:
    return datetime.now(UTC).isoformat()


def followups(bootstrap: str, topics: dict[str, str], task: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in read_topic(bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=1.5) if r["task_id"] == task and r["type"] == kind]


def act(bootstrap: str, topics: dict[str, str], task: str, action: str, **fields: Any) -> None:
    body = {"action": action, "task_id": task, "actor": API} | fields
    produce(bootstrap, topics["TASK_ACTIONS_TOPIC"], [(task.encode(), json.dumps(body).encode())])


def answer(bootstrap: str, topics: dict[str, str], event_id: str, customer: dict[str, Any], **fields: Any) -> None:
    produce(
        bootstrap,
        topics["FEEDBACK_TOPIC"],
        [(customer["id"].encode(), event_bytes(event_id=event_id, occurred_at=now(), customer=customer, **fields))],
    )


def test_three_customer_journeys_recovered_reopened_and_no_response(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_rules_worker: None,
) -> None:
    happy = {"id": "c-happy", "name": "Happy Hats", "segment": "smb", "monthly_value": 300.0}
    grumpy = {"id": "c-grumpy", "name": "Grumpy Gears", "segment": "smb", "monthly_value": 500.0}
    quiet = {"id": "c-quiet", "name": "Quiet Quilts", "segment": "trial", "monthly_value": 20.0}
    journeys = {name: (customer, task_id_for(f"{name}-1")) for name, customer in (("happy", happy), ("grumpy", grumpy), ("quiet", quiet))}
    for name, (customer, _) in journeys.items():
        answer(kafka_bootstrap, topics, f"{name}-1", customer, survey="nps", score=2, comment="The parcel never came")
    for name, (_, task) in journeys.items():
        wait_for(lambda task=task: followups(kafka_bootstrap, topics, task, "followup.opened"), 60, f"{name}'s task opened")
        act(kafka_bootstrap, topics, task, "acknowledge")
        act(kafka_bootstrap, topics, task, "resolve", root_cause="shipping-delay", resolution="Re-sent the parcel", customer_contacted=True)

    # Each resolution asks its customer again, once, with the rule's survey.
    requests = wait_for(
        lambda: (found := read_topic(kafka_bootstrap, topics["SURVEY_REQUEST_TOPIC"], 3, timeout=2)) and len(found) >= 3 and found,
        60,
        "three survey requests",
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
    answer(kafka_bootstrap, topics, "happy-2", happy, survey="csat", score=5, attributes={"task_id": happy_task})
    closed = wait_for(lambda: followups(kafka_bootstrap, topics, happy_task, "followup.closed"), 60, "the happy customer's task closed")
    assert closed[0]["outcome"] == "recovered" and closed[0]["answer"]["event_id"] == "happy-2"

    # Still unhappy: the answer (naming no task) reopens it, in the alert's thread, with the timers restarted; no second task.
    grumpy_task = journeys["grumpy"][1]
    answer(kafka_bootstrap, topics, "grumpy-2", grumpy, survey="csat", score=1, comment="Still nothing <!channel>")
    reopened = wait_for(lambda: followups(kafka_bootstrap, topics, grumpy_task, "followup.reopened"), 60, "the grumpy task reopened")
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

    # No response: the trial customer's four-second window ends without an answer.
    quiet_task = journeys["quiet"][1]
    closed = wait_for(lambda: followups(kafka_bootstrap, topics, quiet_task, "followup.closed"), 60, "the quiet task closed")
    assert closed[0]["outcome"] == "no_response" and closed[0].get("answer") is None

    # Everything settled: one task per journey, each closed or reopened once, and the reopened one open again.
    everything = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=3, settle=2)
    assert sorted(r["task_id"] for r in everything if r["type"] == "followup.opened") == sorted(t for _, t in journeys.values())
    assert [r["task_id"] for r in everything if r["type"] in ("followup.closed", "followup.reopened")] in (
        [happy_task, grumpy_task, quiet_task],
        [happy_task, quiet_task, grumpy_task],
    )
    assert not [r for r in everything if r["type"] == "followup.escalated"]


def test_an_unhappy_answer_joins_the_customers_unresolved_task_and_a_late_answer_closes_nothing(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_rules_worker: None,
) -> None:
    customer = {"id": "c-again", "name": "Again Apparel", "segment": "smb", "monthly_value": 80.0}
    task = task_id_for("again-1")
    answer(kafka_bootstrap, topics, "again-1", customer, survey="nps", score=3)
    wait_for(lambda: followups(kafka_bootstrap, topics, task, "followup.opened"), 60, "the task opened")
    # Not resolved: a second unhappy answer joins it (a reply in its thread), a happy one closes nothing.
    answer(kafka_bootstrap, topics, "again-2", customer, survey="nps", score=1, comment="Hello?")
    answer(kafka_bootstrap, topics, "again-3", customer, survey="csat", score=5)
    updated = wait_for(lambda: followups(kafka_bootstrap, topics, task, "followup.updated"), 60, "the answer joined the task")
    assert updated[0]["event_id"] == "again-2" and updated[0]["answers_in_episode"] == 2
    alert = wait_for(lambda: [m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_alert"], 30, "the alert")
    reply = wait_for(lambda: [m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_alert_reply"], 30, "the reply")
    assert len(alert) == 1 and reply[0]["thread_ts"] == alert[0]["ts"]
    everything = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=3, settle=2)
    assert [r["type"] for r in everything] == ["followup.opened", "followup.updated"]
    assert read_topic(kafka_bootstrap, topics["SURVEY_REQUEST_TOPIC"], 0, timeout=1) == []


THROTTLED = """
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    alert: {channel: "#cx-alerts"}
    throttle: {key: customer.id, window: 7d}
    followup: {owner: cx-team, due_in: 1h, recheck: none}
"""


def test_once_its_task_is_resolved_a_throttle_episode_is_over_and_the_next_detractor_opens_a_task(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    rules = tmp_path / "throttled.yaml"
    rules.write_text(THROTTLED)
    start_worker("worker", RULES_PATH=str(rules)).wait_assigned()
    customer = {"id": "c-thr", "name": "Throttle Toys", "segment": "smb"}
    first, second = task_id_for("thr-1"), task_id_for("thr-3")
    answer(kafka_bootstrap, topics, "thr-1", customer, survey="nps", score=2)
    answer(kafka_bootstrap, topics, "thr-2", customer, survey="nps", score=3)  # joins the episode's task
    wait_for(lambda: followups(kafka_bootstrap, topics, first, "followup.updated"), 60, "the repeat joined the task")
    act(kafka_bootstrap, topics, first, "resolve", root_cause="other", resolution="Called them")
    wait_for(lambda: followups(kafka_bootstrap, topics, first, "followup.resolved"), 60, "the task resolved")
    answer(kafka_bootstrap, topics, "thr-3", customer, survey="nps", score=1)  # no follow-up survey: an unhappy answer anew
    wait_for(lambda: followups(kafka_bootstrap, topics, second, "followup.opened"), 60, "a new task for the new answer")
    everything = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 0, timeout=3, settle=2)
    assert [(r["type"], r["task_id"]) for r in everything] == [
        ("followup.opened", first),
        ("followup.updated", first),
        ("followup.resolved", first),
        ("followup.opened", second),
    ]
    assert read_topic(kafka_bootstrap, topics["SURVEY_REQUEST_TOPIC"], 0, timeout=1) == [], "recheck: none asks nobody"
