"""End to end through a real broker and a fake Slack, with rules in the documented syntax."""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import committed, event_bytes, produce, read_topic, wait_for

RULES = """
rules:
  - id: nps-detractor
    description: NPS detractor
    when:
      survey: nps
      score: {lte: 6}
    severity: high            # critical > high > medium > low > info
    followup: {owner: cx-oncall, due_in: 24h}
    alert: {channel: "#cx-alerts", template: detractor.slack.j2}

  - id: unhappy-enterprise
    when:
      all:
        - customer.segment: {in: [enterprise]}
        - any:
            - {survey: csat, score: {lte: 2}}
            - comment: {contains_any: [cancel, refund, lawyer]}
    severity: critical
    followup: {owner: enterprise-cs, due_in: 4h}
    alert: {channel: "#enterprise-escalations"}
"""

ENTERPRISE = {"id": "c-ent", "name": "Atlas Freight", "segment": "enterprise", "monthly_value": 25000.0}
SMB = {"id": "c-smb", "name": "Purrfect Prints", "segment": "smb", "monthly_value": 100.0}

MALFORMED = {
    b"bad-json": b"{not json",
    b"bad-utf8": b'{"event_id": "\xff\xfe"}',
    b"bad-range": event_bytes(event_id="r1", score=11),
    b"bad-missing": json.dumps({"event_id": "m1", "survey": "nps", "score": 3}).encode(),
    b"bad-survey": event_bytes(event_id="s1", survey="sentiment"),
    b"bad-type": event_bytes(event_id="t1", score="3"),
    b"bad-naive-time": event_bytes(event_id="n1", occurred_at="2026-11-24T10:00:00"),
}
EXPECTED_FIELD = {
    b"bad-json": "JSON",
    b"bad-utf8": "UTF-8",
    b"bad-range": "score",
    b"bad-missing": "occurred_at",
    b"bad-survey": "survey",
    b"bad-type": "score",
    b"bad-naive-time": "occurred_at",
}


@pytest.fixture
def issue_rules(tmp_path: Path) -> Path:
    path = tmp_path / "rules"
    path.mkdir()
    (path / "rules.yaml").write_text(RULES)
    return path


def test_alerts_tasks_and_dead_letters_through_a_real_broker(kafka_bootstrap, topics, fake_slack, start_worker, issue_rules):
    matching = {
        # event_id: (owning rule, channel, due_in, every rule that matched)
        "det-smb": ("nps-detractor", "#cx-alerts", timedelta(hours=24), ["nps-detractor"]),
        "ent-csat": ("unhappy-enterprise", "#enterprise-escalations", timedelta(hours=4), ["unhappy-enterprise"]),
        "ent-refund-det": ("unhappy-enterprise", "#enterprise-escalations", timedelta(hours=4), ["nps-detractor", "unhappy-enterprise"]),
    }
    events = [
        (b"c-smb", event_bytes(event_id="det-smb", score=3, comment="Printer ink arrived late again", customer=SMB)),
        (b"c-ent", event_bytes(event_id="ent-csat", survey="csat", score=1, customer=ENTERPRISE)),
        (b"c-ent", event_bytes(event_id="ent-refund-det", score=2, comment="We want a REFUND", customer=ENTERPRISE)),
        # No rule matches these: no task, no alert.
        (b"c-smb", event_bytes(event_id="promoter", score=10, customer=SMB)),
        (b"c-smb", event_bytes(event_id="passive", score=7, comment="refund", customer=SMB)),
        (b"c-ent", event_bytes(event_id="ent-happy", survey="csat", score=5, customer=ENTERPRISE)),
        (b"c-ent", event_bytes(event_id="ent-ces", survey="ces", score=5, customer=ENTERPRISE)),
    ]
    produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], events + list(MALFORMED.items()))
    worker = start_worker(RULES_PATH=str(issue_rules))

    dead = read_topic(kafka_bootstrap, topics["DLQ_TOPIC"], expect=len(MALFORMED), timeout=60)
    tasks = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=len(matching), timeout=30, settle=1.0)
    wait_for(lambda: len(fake_slack.messages) >= len(matching), 30, "one Slack message per matching event")
    end = {p: n for p, n in committed(kafka_bootstrap, topics["CONSUMER_GROUP"], topics["FEEDBACK_TOPIC"]).items()}
    wait_for(
        lambda: (
            sum(committed(kafka_bootstrap, topics["CONSUMER_GROUP"], topics["FEEDBACK_TOPIC"]).values()) == len(events) + len(MALFORMED)
        ),
        30,
        f"every offset committed (had {end})",
    )

    # Exactly one alert per matching event, in the owning rule's channel; none for the others.
    by_event = {}
    for message in fake_slack.messages:
        payload = message["metadata"]["event_payload"]
        assert payload["event_id"] not in by_event, f"two alerts for {payload['event_id']}"
        by_event[payload["event_id"]] = message
    assert set(by_event) == set(matching)
    for event_id, (rule_id, channel, _, _) in matching.items():
        message = by_event[event_id]
        assert message["channel"] == channel
        assert message["metadata"]["event_type"] == "feedback_alert"
        assert message["metadata"]["event_payload"]["rule_id"] == rule_id
        assert message["blocks"] and message["text"]
    assert "NPS 3/10 · detractor" in by_event["det-smb"]["text"]

    # Tasks: one per matching event, five HEARD steps in order, due_at = opened_at + due_in.
    assert sorted(t["event_id"] for t in tasks) == sorted(matching)
    for task in tasks:
        rule_id, _, due_in, matched_rules = matching[task["event_id"]]
        assert task["type"] == "followup.opened" and task["status"] == "open"
        assert task["rule_id"] == rule_id and task["matched_rules"] == matched_rules
        assert [s["step"] for s in task["steps"]] == ["hear", "empathize", "apologize", "resolve", "diagnose"]
        assert all(s["title"] and s["guidance"] for s in task["steps"])
        opened, due = datetime.fromisoformat(task["opened_at"]), datetime.fromisoformat(task["due_at"])
        assert due - opened == due_in
        assert task["key"] == task["task_id"].encode()
        assert by_event[task["event_id"]]["metadata"]["event_payload"]["task_id"] == task["task_id"]
    assert {t["owner"] for t in tasks} == {"cx-oncall", "enterprise-cs"}

    # Every malformed message is in the DLQ with its reason, original key and source offset.
    assert len(dead) == len(MALFORMED)
    for letter in dead:
        assert letter["type"] == "feedback.invalid"
        assert EXPECTED_FIELD[letter["key"]] in letter["error"], letter["error"]
        assert letter["source"]["topic"] == topics["FEEDBACK_TOPIC"] and letter["source"]["offset"] >= 0
        assert letter["errors"]
    utf8 = next(d for d in dead if d["key"] == b"bad-utf8")
    assert utf8["original_encoding"] == "base64"
    as_text = next(d for d in dead if d["key"] == b"bad-json")
    assert as_text["original"] == "{not json"

    # The worker is still running, and the Slack token appears nowhere in its output.
    assert worker.process.poll() is None
    worker.signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert fake_slack.token not in worker.output()
