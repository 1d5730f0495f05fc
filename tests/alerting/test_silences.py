"""Silences: tasks still open, alerts held back, obeyed by every replica, ending by command or by time."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import ROOT, all_committed, event_bytes, produce, read_topic, wait_for
from worker.alerting import Silence, parse_matchers, silenced_by, silenced_metric
from worker.events import FeedbackEvent


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker", "silence", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def detractor(event_id: str, customer: str) -> tuple[bytes, bytes]:
    return customer.encode(), event_bytes(event_id=event_id, score=1, customer={"id": customer, "name": customer})


def test_a_silence_holds_back_alerts_on_every_replica_until_it_is_expired(kafka_bootstrap, topics, fake_slack, worker_env, start_worker):
    workers = [start_worker("a"), start_worker("b")]
    added = cli(worker_env, "add", "--match", "customer.id=c-42", "--for", "2d", "--reason", "account manager on it")
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    for worker in workers:  # each replica reads it from Kafka within a second
        wait_for(lambda w=worker: f"silence {silence_id}: alerts held back for customer.id=c-42" in w.output(), 30, "the silence")
    listed = cli(worker_env, "list")
    assert silence_id in listed.stdout and "account manager on it" in listed.stdout

    feedback = topics["FEEDBACK_TOPIC"]
    end = produce(kafka_bootstrap, feedback, [detractor("quiet", "c-42"), detractor("loud", "c-7")])
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 60, "both answers handled")
    tasks = read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=2, timeout=30)
    assert {t["event_id"] for t in tasks} == {"quiet", "loud"}  # the silenced answer still opens its task
    assert [m["metadata"]["event_payload"]["event_id"] for m in list(fake_slack.messages)] == ["loud"]

    expired = cli(worker_env, "expire", silence_id)
    assert expired.returncode == 0, expired.stderr
    for worker in workers:
        wait_for(lambda w=worker: f"silence {silence_id} ended" in w.output(), 30, "the end of the silence")
    assert cli(worker_env, "list").stdout.strip() == ""
    produce(kafka_bootstrap, feedback, [detractor("after", "c-42")])
    wait_for(lambda: "after" in [m["metadata"]["event_payload"]["event_id"] for m in list(fake_slack.messages)], 60, "the alert")
    assert cli(worker_env, "expire", "nope").returncode == 1


def test_silences_match_fields_and_rule_and_end_by_themselves() -> None:
    now = datetime(2026, 11, 24, 10, tzinfo=UTC)
    event = FeedbackEvent.model_validate(
        {
            "event_id": "e",
            "occurred_at": now.isoformat(),
            "survey": "nps",
            "score": 2,
            "customer": {"id": "c-42", "segment": "smb"},
            "attributes": {"region": "eu"},
        }
    )
    silence = Silence(
        id="s1",
        matchers=parse_matchers(["customer.id=c-42", "rule=nps-detractor", "attributes.region=eu"]),
        starts_at=now,
        ends_at=now + timedelta(days=2),
        reason="r",
    )
    assert silenced_by({"s1": silence}, event, "nps-detractor", now + timedelta(hours=1)) is silence
    assert silenced_by({"s1": silence}, event, "low-csat", now) is None  # another rule owns it
    assert silenced_by({"s1": silence}, event, "nps-detractor", now + timedelta(days=2)) is None  # ended by itself
    metric = Silence(
        id="s2",
        matchers=parse_matchers(["rule=enterprise-nps-drop", "customer.segment=enterprise"]),
        starts_at=now,
        ends_at=now + timedelta(hours=4),
        reason="known outage",
    )
    assert silenced_metric({"s2": metric}, "enterprise-nps-drop", {"customer.segment": "enterprise"}, now) is metric
    assert silenced_metric({"s2": metric}, "enterprise-nps-drop", {}, now) is None  # the overall figure is not silenced
    with pytest.raises(ValueError, match="unknown field path 'customer.idd'"):
        parse_matchers(["customer.idd=c-42"])
    with pytest.raises(ValueError, match="expected path=value"):
        parse_matchers(["customer.id"])
