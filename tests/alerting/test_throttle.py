"""Throttling: one task and one Slack thread per customer per window, across a restart and two replicas."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import all_committed, event_bytes, produce, read_topic, wait_for

RULES = """\
rules:
  - id: nps-detractor
    description: NPS detractor
    when: {survey: nps, score: {lte: 6}}
    severity: high
    alert: {channel: "#cx-alerts"}
    throttle: {key: customer.id, window: 1d}
"""


def answer(n: int, customer: str, score: int = 2) -> tuple[bytes, bytes]:
    who = {"id": customer, "name": "Purrfect Prints" if customer == "c-42" else "Other Co", "segment": "smb"}
    return customer.encode(), event_bytes(event_id=f"{customer}-{n}", score=score, customer=who, comment=f"answer {n}")


def test_five_detractor_answers_make_one_task_one_alert_and_four_thread_replies(
    kafka_bootstrap, topics, fake_slack, start_worker, tmp_path: Path
):
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    feedback = topics["FEEDBACK_TOPIC"]

    first = start_worker("first", RULES_PATH=str(rules))
    end = produce(kafka_bootstrap, feedback, [answer(1, "c-42"), answer(2, "c-42"), answer(1, "c-7")])
    wait_for(lambda: len(fake_slack.messages) == 3 and all_committed(kafka_bootstrap, topics, end), 60, "two alerts and a reply, committed")
    first.kill9()

    # The rest arrives at two replicas sharing the group: the episode is in Kafka, not in the dead process.
    start_worker("second", RULES_PATH=str(rules))
    start_worker("third", RULES_PATH=str(rules))
    end = end | produce(kafka_bootstrap, feedback, [answer(n, "c-42") for n in (3, 4, 5)] + [answer(2, "c-7", score=0)])
    wait_for(lambda: len(fake_slack.messages) == 7 and all_committed(kafka_bootstrap, topics, end), 90, "every answer handled")

    messages = list(fake_slack.messages)
    purrfect = [m for m in messages if m["metadata"]["event_payload"]["event_id"].startswith("c-42-")]
    (top,) = [m for m in purrfect if "thread_ts" not in m]
    replies = [m for m in purrfect if "thread_ts" in m]
    assert top["metadata"]["event_type"] == "feedback_alert" and top["metadata"]["event_payload"]["event_id"] == "c-42-1"
    assert len(replies) == 4 and all(r["thread_ts"] == top["ts"] and r["channel"] == "#cx-alerts" for r in replies)
    assert sorted(r["metadata"]["event_payload"]["event_id"] for r in replies) == ["c-42-2", "c-42-3", "c-42-4", "c-42-5"]
    assert "Another answer from Purrfect Prints" in replies[-1]["text"]
    other = [m for m in messages if m["metadata"]["event_payload"]["event_id"].startswith("c-7-")]
    assert len([m for m in other if "thread_ts" not in m]) == 1  # the other customer has an episode of their own

    records = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=7, timeout=30, settle=1.0)
    mine = [r for r in records if r["customer"]["id"] == "c-42"]
    (opened,) = [r for r in mine if r["type"] == "followup.opened"]
    updates = [r for r in mine if r["type"] == "followup.updated"]
    assert opened["event_id"] == "c-42-1"
    assert {u["task_id"] for u in updates} == {opened["task_id"]}
    assert sorted(u["answers_in_episode"] for u in updates) == [2, 3, 4, 5]
    assert sorted(u["event_id"] for u in updates) == ["c-42-2", "c-42-3", "c-42-4", "c-42-5"]
