"""/metrics from a real Worker on fake Kafka: what an operator reads off it equals what was fed in."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kafka import TopicPartition
from prometheus_client import generate_latest

from tests.conftest import wait_for
from tests.harness import FEED, NOW, Harness, by_label, event, parse, value
from worker.alerting import Silence
from worker.config import load_settings
from worker.delivery import Call
from worker.observability import Observability

P = "feedback_worker_"


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_counters_equal_what_was_fed_in_by_partition_rule_and_channel(harness: Harness) -> None:
    fb = [TopicPartition("fb", p) for p in FEED]
    for partition, values in FEED.items():
        for v in values:
            harness.consumer.append("fb", None, v, partition)
    harness.start(fb + [TopicPartition("actions", 0)])
    wait_for(
        lambda: len(harness.worker.cases.by_id) == 5 and all(harness.consumer.committed.get(tp) == len(FEED[tp.partition]) for tp in fb),
        10,
        "5 tasks opened and every event committed",
    )
    assert value(harness.scrape(), P + "snapshots_emitted_total") == 0  # the first interim snapshots are due 30 s in
    harness.now += timedelta(seconds=31)
    wait_for(lambda: value(harness.scrape(), P + "snapshots_emitted_total"), 10, "interim snapshots counted")
    harness.finish()
    m = harness.scrape()

    assert by_label(m, P + "events_consumed_total", "partition") == {"0": 5, "1": 4, "2": 3}
    assert by_label(m, P + "events_invalid_total", "partition") == {"0": 1, "1": 1, "2": 0}
    assert by_label(m, P + "events_valid_total", "partition") == {"0": 4, "1": 3, "2": 3}
    assert value(m, P + "task_actions_consumed_total", topic="actions", partition="0") == 5  # the opens, applied by the keeper
    assert by_label(m, P + "rule_matches_total", "rule") == {"nps-detractor": 3, "high-effort": 2}
    assert value(m, P + "tasks_opened_total") == 5
    assert by_label(m, P + "alerts_posted_total", "channel") == {"#cx-alerts": 3}
    assert value(m, P + "alerts_failed_total", channel="#cx-effort", reason="slack") == 2
    assert by_label(m, P + "alerts_retried_total", "channel") == {"#cx-alerts": 4}  # as the sink counted them
    assert by_label(m, P + "dead_letters_total", "type") == {"feedback.invalid": 2, "alert.undeliverable": 2}
    assert value(m, P + "alerts_in_flight") == 0
    assert by_label(m, P + "assigned_partitions", "topic") == {"fb": 3, "actions": 1}
    assert by_label(m, P + "rules_reloads_total", "outcome") == {"accepted": 0, "rejected": 0}


def test_lag_is_the_fetched_highwater_minus_the_committed_position(harness: Harness) -> None:
    fb = [TopicPartition("fb", p) for p in range(4)]
    for n in range(6):
        harness.consumer.append("fb", None, event(n), n % 2)  # 3 events each on partitions 0 and 1
    # What the last fetch responses said: 0 has 4 more beyond what was fetched, 1 is caught up, 2 is empty, 3 not fetched yet.
    harness.consumer.high = {fb[0]: 3 + 4, fb[1]: 3, fb[2]: 0}
    harness.start(fb)
    wait_for(lambda: harness.consumer.committed.get(fb[0]) == 3 and harness.consumer.committed.get(fb[1]) == 3, 10, "commits")
    harness.finish()
    m = harness.scrape()
    assert by_label(m, P + "consumer_lag_records", "partition") == {"0": 4, "1": 0, "2": 0}
    assert 0 <= value(m, P + "last_commit_age_seconds") < 5


def test_lag_before_the_first_commit_counts_from_where_reading_started(harness: Harness) -> None:
    tp = TopicPartition("fb", 0)
    harness.consumer.next_offset[tp] = 100  # the group had committed 100 before this worker got the partition
    harness.consumer.append("fb", None, event(1), 0)
    harness.consumer.high = {tp: 110}
    harness.consumer.assign([tp])
    harness.worker.assigned([tp])
    harness.worker.checkpoint.seen(tp, 100)  # read, not committed yet
    assert by_label(harness.scrape(), P + "consumer_lag_records", "partition") == {"0": 10}


def test_tasks_by_status_and_overdue_silences_and_state_keys_come_from_the_state_tables(harness: Harness) -> None:
    fb = [TopicPartition("fb", p) for p in FEED]
    for partition, values in FEED.items():
        for v in values:
            harness.consumer.append("fb", None, v, partition)
    harness.start(fb + [TopicPartition("actions", 0)])
    wait_for(lambda: len(harness.worker.cases.by_id) == 5 and not harness.worker.checkpoint.waiting, 10, "5 tasks opened")
    harness.finish()
    m = harness.scrape()
    assert by_label(m, P + "tasks", "status") == {"open": 5, "acknowledged": 0, "resolved": 0}
    assert value(m, P + "tasks_overdue") == 0
    keys = by_label(m, P + "state_keys", "kind")
    assert keys["task"] == 5 and keys["post"] == 5  # every alert's record: 3 posted, 2 intents whose posts Slack refused
    assert keys["silence"] == 0 and value(m, P + "silences_active") == 0

    harness.now = NOW + timedelta(days=1, minutes=1)  # the detractors' 24 h are up; high effort has 3 days
    silences = harness.worker.silences.by_id
    silences["s-now"] = Silence(id="s-now", matchers={"rule": "nps-detractor"}, starts_at=NOW, ends_at=NOW + timedelta(days=2), reason="x")
    silences["s-over"] = Silence(id="s-over", matchers={"rule": "low-csat"}, starts_at=NOW, ends_at=NOW + timedelta(hours=1), reason="y")
    m = harness.scrape()
    assert value(m, P + "tasks_overdue") == 3
    assert value(m, P + "silences_active") == 1
    assert by_label(m, P + "state_keys", "kind")["silence"] == 2


def test_before_the_worker_is_built_only_process_metrics_are_served() -> None:
    observability = Observability(load_settings(None, environ={}, http_port=0))
    m = parse(generate_latest(observability.registry).decode())
    assert not [name for name, _ in m if name.startswith(P) and not name.startswith(P + "slack_")]
    assert any(name == "process_resident_memory_bytes" for name, _ in m)


def test_slack_calls_are_a_latency_histogram_by_method_and_a_count_by_result() -> None:
    observability = Observability(load_settings(None, environ={}, http_port=0))
    for seconds, call in [(0.08, Call("ok")), (0.3, Call("ok")), (12.0, Call("unavailable", "Timeout"))]:
        observability.observe("chat.postMessage", seconds, call)
    observability.observe("auth.test", 0.05, Call("ok"))
    m = parse(generate_latest(observability.registry).decode())
    name = P + "slack_request_duration_seconds"
    assert value(m, name + "_count", method="chat.postMessage") == 3
    assert value(m, name + "_sum", method="chat.postMessage") == pytest.approx(12.38)
    assert value(m, name + "_bucket", method="chat.postMessage", le="0.1") == 1
    assert value(m, name + "_bucket", method="chat.postMessage", le="0.5") == 2
    assert value(m, name + "_bucket", method="chat.postMessage", le="10.0") == 2
    assert value(m, name + "_bucket", method="chat.postMessage", le="+Inf") == 3
    assert by_label(
        {k: v for k, v in m.items() if dict(k[1]).get("method") == "chat.postMessage"}, P + "slack_requests_total", "result"
    ) == {"ok": 2, "unavailable": 1}
    assert value(m, P + "slack_requests_total", method="auth.test", result="ok") == 1
