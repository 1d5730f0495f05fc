"""Rising complaints on the broker (issue 22): two replicas, the judge killed with kill -9 while its post is in flight,
restarted; the rising term is in Slack exactly once for its window, and the counts behind it are exact."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from tests.conftest import WorkerProcess, all_committed, produce, wait_for
from tests.fake_slack import FakeSlack

RULES = """
emerging:
  channel: "#cx-insights"
  window: 1d
  baseline: 10d
  min_count: 5
  min_ratio: 3
themes:
  - {id: slow-app, label: Slow app, terms: {en: [sluggish]}}
rules:
  - id: never
    when: {survey: ces, score: {gte: 5}}
    alert: {channel: "#cx-alerts"}
"""
USUAL = ["The app is sluggish again", "Support never answered my email", "Nobody answered my email"]
ZIPPER = [
    "The zipper broke after two days",
    "Zipper stuck, cannot close the bag",
    "my zipper came off on day one",
    "The zipper is stuck again!",
    "zipper broke, jacket useless",
    "Zipper teeth bent out of shape",
    "zipper split open on the first wear",
    "A zipper that jams is no zipper",
    "zipper pull snapped off",
]


def answer(comment: str, at: datetime) -> tuple[bytes, bytes]:
    customer = f"c-{uuid.uuid4().hex[:8]}"  # spread over the partitions by key
    value = {
        "event_id": f"e-{uuid.uuid4().hex[:10]}",
        "occurred_at": at.isoformat(),
        "survey": "csat",
        "score": 2,
        "language": "en",
        "comment": comment,
        "customer": {"id": customer, "segment": "smb", "monthly_value": 50.0},
    }
    return customer.encode(), json.dumps(value).encode()


class StateReader:
    """The state topic as a replica reads it: the latest record of every key."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
        self.tp = TopicPartition(topic, 0)
        self.consumer.assign([self.tp])
        self.consumer.seek_to_beginning(self.tp)
        self.latest: dict[str, bytes | None] = {}

    def read(self) -> dict[str, bytes | None]:
        for records in self.consumer.poll(timeout_ms=200).values():
            for record in records:
                self.latest[record.key.decode()] = record.value
        return self.latest

    def rising(self, feedback: str) -> dict[str, dict[str, Any]]:
        """Rising-complaint slot → its post record (OWED or POSTED)."""
        prefix = f"post|{feedback}|emerging:"
        return {k.removeprefix(f"post|{feedback}|"): json.loads(v) for k, v in self.read().items() if k.startswith(prefix) and v}

    def close(self) -> None:
        self.consumer.close()


def test_a_rising_term_is_posted_exactly_once_across_a_kill_9_and_two_replicas(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    if midnight - now < timedelta(minutes=3):  # the wave and its judging must fall in one day (window: 1d)
        wait_for(lambda: datetime.now(UTC) > midnight + timedelta(seconds=5), 200, "the next day")
        now = datetime.now(UTC)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    feedback = topics["FEEDBACK_TOPIC"]
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rising.yaml").write_text(RULES)
    env = {"RULES_PATH": str(tmp_path / "rules"), "SLACK_TIMEOUT_SECONDS": "3"}

    history = [answer(comment, today - timedelta(days=day, hours=-n)) for day in range(1, 11) for n, comment in enumerate(USUAL)]
    history += [answer(comment, today + timedelta(seconds=n)) for n, comment in enumerate(USUAL)]
    end = produce(kafka_bootstrap, feedback, history)
    workers = [start_worker("one", **env), start_worker("two", **env)]
    for worker in workers:
        worker.wait_assigned()
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 60, "the history counted and committed")
    judge = wait_for(lambda: next((w for w in workers if "this replica judges" in w.output()), None), 30, "a judge")
    survivor = next(w for w in workers if w is not judge)

    state = StateReader(kafka_bootstrap, topics["STATE_TOPIC"])
    try:
        fake_slack.delay_s = 1.5  # the post stays in flight a moment: the kill lands between owing it and Slack's answer
        produce(kafka_bootstrap, feedback, [answer(comment, now + timedelta(seconds=n)) for n, comment in enumerate(ZIPPER[:6])])
        owed = wait_for(lambda: state.rising(feedback), 60, "the rising complaint owed")
        judge.kill9()
        (slot,) = owed
        assert slot.endswith("|86400|zipper") and slot.startswith(f"emerging:{int(today.timestamp())}|")

        topic_all = f"assigned partitions: {feedback}[0], {feedback}[1], {feedback}[2]"
        wait_for(lambda: topic_all in survivor.output(), 60, "the survivor takes every partition")
        end = produce(kafka_bootstrap, feedback, [answer(comment, now + timedelta(seconds=10 + n)) for n, comment in enumerate(ZIPPER[6:])])
        workers.append(start_worker("one-again", **env))
        wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 90, "every answer committed")
        posted = wait_for(lambda: [m for m in fake_slack.in_channel("#cx-insights")], 60, "the rising complaint in Slack")
        wait_for(lambda: state.rising(feedback).get(slot, {}).get("state") == "posted", 60, "its POSTED record")

        deadline = time.monotonic() + 8  # a settle period: a second post would come from a judge that looked again
        while time.monotonic() < deadline:
            posted = fake_slack.in_channel("#cx-insights")
            assert len(posted) == 1, [m["text"] for m in posted]
            time.sleep(0.2)
        (message,) = posted
        assert message["metadata"]["event_payload"]["slots"] == [slot]
        assert "“zipper”" in message["text"] and "usually 0.1" in message["text"]

        def counted() -> dict[str, int]:  # the window's counts, summed over the partitions' latest partials
            total: dict[str, int] = {}
            for key, value in state.read().items():
                if key.startswith(f"terms|{feedback}|") and key.endswith(f"|86400|{int(today.timestamp())}") and value:
                    for term, n in json.loads(value)["counts"].items():
                        total[term] = total.get(term, 0) + n
            return total

        wait_for(lambda: counted().get("zipper") == len(ZIPPER), 30, "every zipper comment counted once")
        assert counted()["sluggish"] == 1 and counted()["email"] == 2  # the usual, once each: none twice, none missed
    finally:
        state.close()
        fake_slack.delay_s = 0.0
