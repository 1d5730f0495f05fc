"""Duplicate alerts after crashes, with and without the Slack history search: the figures of docs/delivery.md.

Runs the scenario of tests/e2e/test_exactly_once.py (a burst of ~460 alerts, replies and digests;
Slack answering in 30 ms, eight posts in flight; the worker killed with kill -9 at --kills random
moments and restarted) once with SLACK_HISTORY_LOOKUP on and once off, on the embedded broker and
the fake Slack, and prints how many answers reached Slack more than once, and the state topic's
size per 100,000 alerts.

Usage: .venv/bin/python bench/exactly_once.py [--kills 20] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from tests.conftest import FAST_GROUP, WorkerProcess  # noqa: E402
from tests.e2e.test_exactly_once import kill_burst  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402
from worker.broker import EmbeddedBroker, ensure_topics  # noqa: E402
from worker.config import load_settings  # noqa: E402


def state_bytes(bootstrap: str, topic: str) -> tuple[int, int]:
    """(keys, bytes) of the latest `post|` record per key on the state topic: its size once compacted."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    latest: dict[bytes, int] = {}
    for record in consumer:
        if record.key.startswith(b"post|"):
            if record.value is None:
                latest.pop(record.key, None)
            else:
                latest[record.key] = len(record.key) + len(record.value)
    consumer.close()
    return len(latest), sum(latest.values())


def run(broker: EmbeddedBroker, search: bool, kills: int, seed: int) -> tuple[int, int, int, int]:
    suffix = uuid.uuid4().hex[:8]
    topics = {
        "FEEDBACK_TOPIC": f"feedback-{suffix}",
        "FOLLOWUP_TOPIC": f"followups-{suffix}",
        "METRICS_TOPIC": f"metrics-{suffix}",
        "DLQ_TOPIC": f"dlq-{suffix}",
        "CONSUMER_GROUP": f"group-{suffix}",
        "STATE_TOPIC": f"state-{suffix}",
        "TASK_ACTIONS_TOPIC": f"actions-{suffix}",
    }
    settings = load_settings(None, environ={}, kafka_bootstrap_servers=broker.bootstrap_servers)
    ensure_topics(settings, [topics["FEEDBACK_TOPIC"]], partitions=3)
    folder = Path(tempfile.mkdtemp(prefix="exactly-once-"))
    with FakeSlack(token="xoxb-bench-" + suffix) as slack:
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
            | topics
            | FAST_GROUP
            | {
                "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "TEMPLATES_PATH": str(ROOT / "templates"),
                "SLACK_BOT_TOKEN": slack.token,
                "SLACK_API_URL": slack.url,
                "COMMIT_INTERVAL_SECONDS": "0.2",
                "CHANNEL_RATE_LIMIT_PER_MINUTE": "0",
                "PYTHONUNBUFFERED": "1",
                "SLACK_HISTORY_LOOKUP": "true" if search else "false",
            }
        )
        started: list[WorkerProcess] = []

        def start(name: str, **extra: str) -> WorkerProcess:
            process = WorkerProcess(env | extra, folder, name).start()
            started.append(process)
            return process

        try:
            seen, matching = kill_burst(broker.bootstrap_servers, topics, slack, start, folder, kills=kills, seed=seed)
        finally:
            for process in started:
                process.stop()
        keys, size = state_bytes(broker.bootstrap_servers, topics["STATE_TOPIC"])
    twice = sum(1 for n in seen.values() if n > 1)
    lost = len(matching - set(seen))
    return len(matching), twice, lost, size * 100_000 // max(keys, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1, help="runs of each (the seed changes)")
    args = parser.parse_args()
    totals: Counter[str] = Counter()
    with EmbeddedBroker() as broker:
        for n in range(args.runs):
            for search in (True, False):
                answers, twice, lost, per_100k = run(broker, search, args.kills, seed=21 + n)
                label = "search on " if search else "search off"
                print(
                    f"{label}: {answers} answers alerted, {twice} reached Slack twice ({twice / answers:.1%}), {lost} lost; "
                    f"state topic ≈ {per_100k / 1e6:.1f} MB per 100,000 alerts once compacted",
                    flush=True,
                )
                totals[f"{label} answers"] += answers
                totals[f"{label} twice"] += twice
    for label in ("search on ", "search off"):
        print(
            f"{label}: {totals[label + ' twice']} of {totals[label + ' answers']} answers twice "
            f"({totals[label + ' twice'] / max(totals[label + ' answers'], 1):.2%}) over {args.runs} run(s) of {args.kills} kills"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
