"""Metric snapshots through the real broker: exact with two replicas and a kill -9, comment themes included.

The expected figures are computed here, independently, straight from the produced events:
no Tally, no panes, only the definitions in docs/metrics.md. A comment's themes are found by
plain word membership (English comments with `language: en`, words whose stems are unambiguous).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from tests.conftest import all_committed, committed, produce, wait_for
from worker.cli import EXIT_OK, main
from worker.demo import FeedbackGenerator

WINDOWS = [(3600, 3600, "1h"), (86400, 3600, "24h"), (7 * 86400, 86400, "7d")]  # (size, step, label): the defaults
DIMENSIONS = ["customer.segment", "channel"]
CHURN = 0.95

#: The themes the workers run with, and what the test matches them by: a comment's words.
THEMES_RULES = """
themes:
  - {id: delivery, label: Delivery}
  - {id: late, label: Late, parent: delivery, terms: {en: [late]}}
  - {id: broken, label: Broken, parent: delivery, terms: {en: [broken]}}
  - {id: billing, label: Billing, terms: {en: [invoice, "double charged"]}}
  - {id: praise, label: Praise, terms: {en: [great]}}
rules:
  - id: nps-detractor
    description: NPS detractor
    when: {survey: nps, score: {lte: 6}}
    severity: high
    followup: {owner: cx-oncall, due_in: 24h}
    alert: {channel: "#cx-alerts"}
"""
COMMENTS = [
    "The parcel was late",
    "Late and broken, again",
    "Box arrived broken",
    "Wrong invoice this month",
    "I was double charged",
    "Great service",
    "Great, but the invoice was late",
    "Nothing to add",
    "",  # no comment, as far as the figures go
    None,
]


def mentions(comment: str | None) -> set[str]:
    """The themes of THEMES_RULES a comment mentions, parents included: by its words."""
    words = re.findall(r"\w+", (comment or "").casefold())
    found = {
        theme for theme, word in [("late", "late"), ("broken", "broken"), ("billing", "invoice"), ("praise", "great")] if word in words
    }
    if any(pair == ("double", "charged") for pair in zip(words, words[1:], strict=False)):
        found.add("billing")
    return found | ({"delivery"} if found & {"late", "broken"} else set())


def with_comments(messages: list[tuple[bytes, bytes]], seed: int) -> list[tuple[bytes, bytes]]:
    """The valid answers with a comment of COMMENTS each (or none), in English: the malformed ones as they are."""
    rng = random.Random(seed)
    out = []
    for key, value in messages:
        if not key.startswith(b"bad-"):
            event = json.loads(value) | {"language": "en"}
            event.pop("comment", None)
            if (comment := rng.choice(COMMENTS)) is not None:
                event["comment"] = comment
            value = json.dumps(event).encode()
        out.append((key, value))
    return out


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


def unhappy_of(events: list[dict[str, Any]]) -> dict[str, tuple[str, float]]:
    """Customer -> (occurred_at, monthly_value) of their latest unhappy answer."""
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
    return unhappy


def nps_of(events: list[dict[str, Any]]) -> float | None:
    """Unrounded: % promoters - % detractors of the NPS answers."""
    nps = [e["score"] for e in events if e["survey"] == "nps"]
    return (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps) * 100 if nps else None


def figures_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    commented = [e for e in events if e.get("comment")]
    themes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in commented:
        for theme in mentions(e["comment"]):
            themes[theme].append(e)
    unhappy = unhappy_of(events)
    whole = nps_of(events)

    def theme_figures(theme: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
        rest = nps_of([e for e in events if theme not in mentions(e.get("comment"))])
        at_risk = unhappy_of(answers)  # who: a customer unhappy in an answer mentioning it; at the window's value
        return base_figures(answers) | {
            "unhappy_customers": len(at_risk),
            "revenue_at_risk": round(math.fsum(unhappy[c][1] for c in at_risk) * CHURN, 2),
            "nps_impact": None if whole is None or rest is None else round(whole - rest, 2),
        }

    return base_figures(events) | {
        "unhappy_customers": len(unhappy),
        "revenue_at_risk": round(math.fsum(v for _, v in unhappy.values()) * CHURN, 2),  # exact sum, then round
        "comments": len(commented),
        "tagged": sum(bool(mentions(e["comment"])) for e in commented),
        "themes": {theme: theme_figures(theme, answers) for theme, answers in themes.items()},
    }


def base_figures(events: list[dict[str, Any]]) -> dict[str, Any]:
    nps = [e["score"] for e in events if e["survey"] == "nps"]
    csat = [e["score"] for e in events if e["survey"] == "csat"]
    ces = [e["score"] for e in events if e["survey"] == "ces"]
    promoters, detractors = sum(s >= 9 for s in nps), sum(s <= 6 for s in nps)
    return {
        "responses": len(events),
        "nps": (len(nps), promoters, len(nps) - promoters - detractors, detractors),
        "nps_score": round((promoters - detractors) / len(nps) * 100, 2) if nps else None,
        "csat": (len(csat), sum(s >= 4 for s in csat)),
        "csat_score": round(sum(s >= 4 for s in csat) / len(csat) * 100, 2) if csat else None,
        "ces": (len(ces), sum(s >= 4 for s in ces)),
        "ces_mean": round(sum(ces) / len(ces), 2) if ces else None,
    }


def figures_in(snapshot: dict[str, Any]) -> dict[str, Any]:
    themes = {
        theme: base_figures_in(t)
        | {"unhappy_customers": t["unhappy"], "revenue_at_risk": t["revenue_at_risk"], "nps_impact": t["nps_impact"]}
        for theme, t in snapshot["themes"].items()
    }
    return base_figures_in(snapshot) | {
        "unhappy_customers": snapshot["unhappy_customers"],
        "revenue_at_risk": snapshot["revenue_at_risk"],
        "comments": snapshot["comments"],
        "tagged": snapshot["tagged"],
        "themes": themes,
    }


def base_figures_in(snapshot: dict[str, Any]) -> dict[str, Any]:
    nps, csat, ces = snapshot["nps"], snapshot["csat"], snapshot["ces"]
    return {
        "responses": snapshot["responses"],
        "nps": (nps["responses"], nps["promoters"], nps["passives"], nps["detractors"]),
        "nps_score": nps["score"],
        "csat": (csat["responses"], csat["satisfied"]),
        "csat_score": csat["score"],
        "ces": (ces["responses"], ces["high_effort"]),
        "ces_mean": ces["mean"],
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


def test_snapshots_are_exact_with_two_replicas_and_a_kill_9(kafka_bootstrap, topics, start_worker, tmp_path, monkeypatch, capsys):
    """Every snapshot, its comment themes included, equals the figures computed here; `report themes` prints them."""
    config = tmp_path / "worker.yaml"
    # Lateness of 3 days keeps every window open, so the latest snapshot must cover every event.
    config.write_text("metrics:\n  dimensions: [customer.segment, channel]\n  lateness: 3d\n  emit_every: 1s\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "themes.yaml").write_text(THEMES_RULES)
    count = 3000
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=30)
    generator = FeedbackGenerator(seed=21, customers=120, start=start, spacing_s=30 * 3600 / count)
    messages = with_comments(list(generator.stream(count, malformed_every=150)), seed=21)
    valid = [json.loads(value) for key, value in messages if not key.startswith(b"bad-")]
    expected = expected_snapshots(valid)
    assert len(valid) == count - count // 150
    overall = expected[max(k for k in expected if k.startswith("7d|") and k.endswith("|*"))]
    assert set(overall["themes"]) == {"delivery", "late", "broken", "billing", "praise"}
    assert overall["responses"] > overall["comments"] > overall["tagged"] > 0  # answers without a comment, comments without a theme

    args = ("--config", str(config))
    env = {"RULES_PATH": str(rules)}
    half = len(messages) // 2
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages[:half])
    first = start_worker("first", args=args, **env)
    second = start_worker("second", args=args, **env)
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
    start_worker("first-again", args=args, **env)
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
        hours = [s for k, s in latest.items() if k.startswith("1h|") and k.endswith("|*")]
        assert sum(s["responses"] for s in hours) == len(valid)  # every valid event counted exactly once
    finally:
        reader.close()

    # What an analyst reads: the table of the overall 24h window with the most tagged answers, largest impact first.
    key = max((k for k in expected if k.startswith("24h|") and k.endswith("|*")), key=lambda k: (expected[k]["tagged"], k))
    want = expected[key]
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("METRICS_TOPIC", topics["METRICS_TOPIC"])
    monkeypatch.setenv("RULES_PATH", str(rules))  # the labels people read come from the rules' themes
    assert main(["report", "themes", "--window", "24h", "--start", key.split("|")[1]]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(f"{want['responses']} answer(s), {want['comments']} with a comment, {want['tagged']} mentioning a theme")
    header = lines.index(next(line for line in lines if line.startswith("theme ")))
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[header + 1 : header + 1 + len(want["themes"])]]
    labels = {"delivery": "Delivery", "late": "Delivery › Late", "broken": "Delivery › Broken", "billing": "Billing", "praise": "Praise"}
    ranked = sorted(
        want["themes"].items(),
        key=lambda kv: (kv[1]["nps_impact"] is None, -abs(kv[1]["nps_impact"] or 0), -kv[1]["responses"], kv[0]),
    )
    assert [(r[0], r[1], r[4], r[7]) for r in rows] == [
        (labels[theme], str(t["responses"]), "—" if t["nps_impact"] is None else f"{t['nps_impact']:+.2f}", f"${t['revenue_at_risk']:,.2f}")
        for theme, t in ranked
    ]


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
