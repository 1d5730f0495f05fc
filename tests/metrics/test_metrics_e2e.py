"""Metric snapshots through the real broker: exact with two replicas and a kill -9.

The expected figures are computed here, independently, straight from the produced events:
no Tally, no panes, only the definitions in docs/metrics.md.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from tests.conftest import all_committed, committed, produce, wait_for
from worker.demo import FeedbackGenerator

WINDOWS = [(3600, 3600, "1h"), (86400, 3600, "24h"), (7 * 86400, 86400, "7d")]  # (size, step, label): the defaults
DIMENSIONS = ["customer.segment", "channel"]
CHURN = 0.95


def _value(event: dict[str, Any], path: str) -> Any:
    head, _, tail = path.partition(".")
    return event.get(head, {}).get(tail) if tail else event.get(head)


def expected_snapshots(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Snapshot key -> the figures an analyst would compute from the same responses."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        ts = int(datetime.fromisoformat(event["occurred_at"]).timestamp())
        dims = ["*"] + [f"{p}={_value(event, p)}" for p in DIMENSIONS if _value(event, p) is not None]
        for size, step, label in WINDOWS:
            first = ts - ts % step - size + step
            for start in range(first, ts + 1, step):
                for dim in dims:
                    groups[f"{label}|{datetime.fromtimestamp(start, UTC).isoformat()}|{dim}"].append(event)
    return {key: figures_of(group) for key, group in groups.items()}


def figures_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    nps = [e["score"] for e in events if e["survey"] == "nps"]
    csat = [e["score"] for e in events if e["survey"] == "csat"]
    ces = [e["score"] for e in events if e["survey"] == "ces"]
    promoters, detractors = sum(s >= 9 for s in nps), sum(s <= 6 for s in nps)
    unhappy: dict[str, tuple[str, float]] = {}
    for e in events:
        bad = (
            (e["survey"] == "nps" and e["score"] <= 6)
            or (e["survey"] == "csat" and e["score"] <= 3)
            or (e["survey"] == "ces" and e["score"] >= 4)
        )
        if bad:
            key = (e["occurred_at"], e["customer"]["monthly_value"])
            if e["customer"]["id"] not in unhappy or key > unhappy[e["customer"]["id"]]:
                unhappy[e["customer"]["id"]] = key
    return {
        "responses": len(events),
        "nps": (len(nps), promoters, len(nps) - promoters - detractors, detractors),
        "nps_score": round((promoters - detractors) / len(nps) * 100, 2) if nps else None,
        "csat": (len(csat), sum(s >= 4 for s in csat)),
        "csat_score": round(sum(s >= 4 for s in csat) / len(csat) * 100, 2) if csat else None,
        "ces": (len(ces), sum(s >= 4 for s in ces)),
        "ces_mean": round(sum(ces) / len(ces), 2) if ces else None,
        "unhappy_customers": len(unhappy),
        "revenue_at_risk": round(math.fsum(v for _, v in unhappy.values()) * CHURN, 2),  # exact sum, then round
    }


def figures_in(snapshot: dict[str, Any]) -> dict[str, Any]:
    nps, csat, ces = snapshot["nps"], snapshot["csat"], snapshot["ces"]
    return {
        "responses": snapshot["responses"],
        "nps": (nps["responses"], nps["promoters"], nps["passives"], nps["detractors"]),
        "nps_score": nps["score"],
        "csat": (csat["responses"], csat["satisfied"]),
        "csat_score": csat["score"],
        "ces": (ces["responses"], ces["high_effort"]),
        "ces_mean": ces["mean"],
        "unhappy_customers": snapshot["unhappy_customers"],
        "revenue_at_risk": snapshot["revenue_at_risk"],
    }


class LatestSnapshots:
    """Reads METRICS_TOPIC as a downstream service would: the latest record per key wins."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        partitions = [TopicPartition(topic, p) for p in wait_for(lambda: self.consumer.partitions_for_topic(topic), 10, topic)]
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)
        self.latest: dict[str, dict[str, Any]] = {}

    def read(self) -> dict[str, dict[str, Any]]:
        for records in self.consumer.poll(timeout_ms=200, max_records=10000).values():
            for record in records:
                self.latest[record.key.decode()] = json.loads(record.value)
        return self.latest

    def close(self) -> None:
        self.consumer.close()


def test_snapshots_are_exact_with_two_replicas_and_a_kill_9(kafka_bootstrap, topics, start_worker, tmp_path):
    config = tmp_path / "worker.yaml"
    # Lateness of 3 days keeps every window open, so the latest snapshot must cover every event.
    config.write_text("metrics:\n  dimensions: [customer.segment, channel]\n  lateness: 3d\n  emit_every: 1s\n")
    count = 3000
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    generator = FeedbackGenerator(seed=21, customers=120, start=start, spacing_s=30 * 3600 / count)
    messages = list(generator.stream(count, malformed_every=150))
    valid = [json.loads(value) for key, value in messages if not key.startswith(b"bad-")]
    expected = expected_snapshots(valid)
    assert len(valid) == count - count // 150

    args = ("--config", str(config))
    half = len(messages) // 2
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages[:half])
    first = start_worker("first", args=args)
    second = start_worker("second", args=args)
    first.wait_assigned()
    wait_for(
        lambda: sum(committed(kafka_bootstrap, topics["CONSUMER_GROUP"], topics["FEEDBACK_TOPIC"]).values()) > 0, 60, "the first commits"
    )

    # The rest arrives while the first worker is killed: its partitions move to the second, then back.
    for chunk in range(half, len(messages), 300):
        end = end | produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages[chunk : chunk + 300])
        if chunk == half:
            first.kill9()
            at_kill = sum(committed(kafka_bootstrap, topics["CONSUMER_GROUP"], topics["FEEDBACK_TOPIC"]).values())
    assert at_kill < len(messages), "the kill should land mid-stream"
    # The survivor takes over every partition (restoring the dead worker's partials), then the restart takes some back.
    topic = topics["FEEDBACK_TOPIC"]
    all_three = f"assigned partitions: {topic}[0], {topic}[1], {topic}[2]"
    wait_for(lambda: all_three in second.output(), 60, "the surviving worker to take over every partition")
    start_worker("first-again", args=args)
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 120, "every offset committed")

    reader = LatestSnapshots(kafka_bootstrap, topics["METRICS_TOPIC"])
    try:

        def settled() -> bool:
            latest = reader.read()
            return all(key in latest and figures_in(latest[key]) == want for key, want in expected.items())

        deadline = time.monotonic() + 60
        while not settled() and time.monotonic() < deadline:
            pass
        latest = reader.latest
        wrong = {
            k: (figures_in(latest[k]) if k in latest else None, want)
            for k, want in expected.items()
            if k not in latest or figures_in(latest[k]) != want
        }
        assert not wrong, f"{len(wrong)} of {len(expected)} snapshots differ, e.g. {list(wrong.items())[:3]}"
        # Tasks are opened on the worker's clock, so the current hour may have loop figures and no answers (by design:
        # metrics/snapshots.py); any other window without events must not be there.
        extra = {k for k in set(latest) - set(expected) if latest[k]["responses"] or not latest[k]["loop"]["opened"]}
        assert not extra, f"snapshots for windows with no events and no tasks: {sorted(extra)[:5]}"
        assert all(not s["final"] for s in latest.values())
        overall = [s for k, s in latest.items() if k.startswith("1h|") and k.endswith("|*")]
        assert sum(s["responses"] for s in overall) == len(valid)  # every valid event counted exactly once
    finally:
        reader.close()


def test_future_answers_go_to_the_dlq_and_late_ones_are_counted_as_late(kafka_bootstrap, topics, start_worker, tmp_path):
    from tests.conftest import event_bytes, read_topic

    now = datetime.now(UTC).replace(microsecond=0)
    future = event_bytes(event_id="from-the-future", occurred_at=(now + timedelta(hours=2)).isoformat())
    ancient = event_bytes(event_id="ancient", occurred_at=(now - timedelta(days=30)).isoformat(), score=3)
    fresh = event_bytes(event_id="fresh", occurred_at=now.isoformat(), score=10)
    produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(b"a", future), (b"a", ancient), (b"a", fresh)])
    config = tmp_path / "worker.yaml"
    config.write_text("metrics:\n  emit_every: 1s\n")
    worker = start_worker("worker", args=("--config", str(config)))

    (dead,) = read_topic(kafka_bootstrap, topics["DLQ_TOPIC"], expect=1, timeout=60, settle=1.0)
    assert dead["error"].startswith("occurred_at: ") and dead["error"].endswith("is more than 5 minutes in the future")
    assert json.loads(dead["original"])["event_id"] == "from-the-future"

    reader = LatestSnapshots(kafka_bootstrap, topics["METRICS_TOPIC"])
    try:

        def current_overall() -> dict[str, Any] | None:
            # The 7d window (every 1d) holding both the fresh answer and the arrival of the late one.
            day = 86400
            start = int(now.timestamp()) // day * day + day - 7 * day
            return reader.read().get(f"7d|{datetime.fromtimestamp(start, UTC).isoformat()}|*")

        snapshot = wait_for(lambda: (s := current_overall()) and s["late_events"] == 1 and s, 60, "a snapshot with the late answer")
    finally:
        reader.close()
    assert snapshot["responses"] == 1  # only the fresh answer is in the figures; the ancient one is late, the future one refused
    assert "too late for every metric window" in worker.output()
