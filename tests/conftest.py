"""Shared fixtures: one Kafka broker for the session, a fake Slack per test, worker processes.

The broker comes from one fixture: the embedded Tansu by default, or testcontainers' Kafka
with KAFKA_TEST_BACKEND=testcontainers (where a Docker engine runs). Each test gets its own
topics and consumer group, so tests never see each other's data. Tests that need the broker
are marked `broker` (`pytest -m "not broker"` runs the others in seconds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.fake_slack import FakeSlack
from tests.harness import Harness, running
from worker.broker import EmbeddedBroker, ensure_topics
from worker.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
FAST_GROUP = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "KAFKA_HEARTBEAT_INTERVAL_MS": "1000"}


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.05) -> Any:
    """Poll `condition` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the broker, so `-m "not broker"` runs the rest in seconds.

    On several processes (`make test`: pytest-xdist, `--dist load --maxschedchunk 1`, which hands the
    tests out in this order, one at a time, to whichever process is free), the long ones go first: the
    fuzz runs (a minute of CPU each), then the tests that start worker processes (mostly waiting), then
    the other broker tests, then the rest, which fill the gaps. Started last, a long test would be
    the tail of the run. Alone, the suite keeps its usual order.
    """
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.broker)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_weight, reverse=True)  # stable: a file's tests stay together, in order


def _weight(item: pytest.Item) -> int:
    fixtures = getattr(item, "fixturenames", ())
    if item.get_closest_marker("fuzz"):
        return 3
    if "start_worker" in fixtures or "worker_env" in fixtures:
        return 2
    return 1 if item.get_closest_marker("broker") else 0


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backend = os.environ.get("KAFKA_TEST_BACKEND", "tansu")
    if backend == "testcontainers":
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    if backend != "tansu":
        raise pytest.UsageError(f"KAFKA_TEST_BACKEND must be tansu or testcontainers, not {backend!r}")
    broker = EmbeddedBroker(log_path=tmp_path_factory.mktemp("broker") / "tansu.log")
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def topics(kafka_bootstrap: str) -> dict[str, str]:
    """Fresh topic names and consumer group for one test; the input topic has 3 partitions."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "FEEDBACK_TOPIC": f"feedback-{suffix}",
        "FOLLOWUP_TOPIC": f"followups-{suffix}",
        "METRICS_TOPIC": f"metrics-{suffix}",
        "DLQ_TOPIC": f"dlq-{suffix}",
        "CONSUMER_GROUP": f"group-{suffix}",
        "STATE_TOPIC": f"state-{suffix}",
        "TASK_ACTIONS_TOPIC": f"actions-{suffix}",
        "SURVEY_REQUEST_TOPIC": f"surveys-{suffix}",
    }
    settings = load_settings(None, environ={}, kafka_bootstrap_servers=kafka_bootstrap)
    ensure_topics(settings, [names["FEEDBACK_TOPIC"]], partitions=3)
    # METRICS_TOPIC compacted, as the worker needs it (broker/topology.py refuses to start otherwise)
    ensure_topics(settings, [names["FOLLOWUP_TOPIC"], names["METRICS_TOPIC"], names["DLQ_TOPIC"]], compacted=[names["METRICS_TOPIC"]])
    return names


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(token="xoxb-secret-" + uuid.uuid4().hex) as slack:
        yield slack


@pytest.fixture
def worker_env(kafka_bootstrap: str, topics: dict[str, str], fake_slack: FakeSlack) -> dict[str, str]:
    """Environment for `feedback-worker run` against this test's topics and fake Slack."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    return (
        env
        | topics
        | FAST_GROUP
        | {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "RULES_PATH": str(ROOT / "rules"),
            "TEMPLATES_PATH": str(ROOT / "templates"),
            "SLACK_BOT_TOKEN": fake_slack.token,
            "SLACK_API_URL": fake_slack.url,
            "COMMIT_INTERVAL_SECONDS": "0.2",
            # Delivery tests count one Slack message per alert; tests of the rate limit turn it on themselves.
            "CHANNEL_RATE_LIMIT_PER_MINUTE": "0",
            "PYTHONUNBUFFERED": "1",
            # Many workers run at once: none serves /metrics unless its test asks (tests/test_observability_e2e.py).
            "HTTP_PORT": "0",
        }
    )


@pytest.fixture
def start_harness(fake_slack: FakeSlack, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """Start an in-process worker (tests/harness.py) holding every partition, posting to this test's fake Slack
    through the real SlackSink, its clock running; `rules` (YAML) replaces the shipped rules, `settings` as Harness takes
    them. Stopped after the test."""
    with ExitStack() as stack:

        def start(rules: str | None = None, **settings: Any) -> Harness:
            if rules is not None:
                path = tmp_path / f"rules-{uuid.uuid4().hex[:6]}.yaml"
                path.write_text(rules)
                settings["rules_path"] = path
            return stack.enter_context(running(slack=fake_slack, live=True, **settings))

        yield start


class WorkerProcess:
    """`python -m worker run` as a real process, so tests can SIGTERM or kill -9 it."""

    def __init__(self, env: dict[str, str], log_dir: Path, name: str = "worker", args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.args = args
        self.stdout_path = log_dir / f"{name}.stdout"
        self.stderr_path = log_dir / f"{name}.stderr"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", *self.args], env=self.env, cwd=ROOT, stdout=out, stderr=err
            )
        return self

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def wait_assigned(self, timeout: float = 40.0) -> None:
        wait_for(
            lambda: "assigned partitions: " in self.output() and "none" not in self.output().rsplit("assigned partitions: ", 1)[1][:5],
            timeout,
            "the worker to join its group and get partitions",
        )

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        self.signal(signal.SIGKILL)
        assert self.process is not None
        self.process.wait(timeout=10)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def start_worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(name: str = "worker", args: tuple[str, ...] = (), **env: str) -> WorkerProcess:
        process = WorkerProcess(worker_env | env, tmp_path, name, args).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def start_replicas(start_worker: Callable[..., WorkerProcess], tmp_path: Path) -> Callable[..., list[WorkerProcess]]:
    """Start workers named `names` with a config file holding `config` (YAML), and wait until each has partitions."""

    def start(config: str, names: tuple[str, ...] = ("one", "two"), **env: str) -> list[WorkerProcess]:
        path = tmp_path / "worker.yaml"
        path.write_text(config)
        replicas = [start_worker(name, args=("--config", str(path)), **env) for name in names]
        for replica in replicas:
            replica.wait_assigned()
        return replicas

    return start


def produce(bootstrap: str, topic: str, messages: list[tuple[bytes | None, bytes]]) -> dict[int, int]:
    """Produce (key, value) pairs; return partition -> one past the last offset written."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="lz4")
    futures = [producer.send(topic, key=key, value=value) for key, value in messages]
    producer.flush()
    producer.close()
    end: dict[int, int] = {}
    for future in futures:
        meta = future.get(timeout=10)
        end[meta.partition] = max(end.get(meta.partition, 0), meta.offset + 1)
    return end


def event_bytes(**fields: Any) -> bytes:
    """A valid feedback event as JSON bytes; keyword arguments override the defaults."""
    event = {
        "event_id": f"e-{uuid.uuid4().hex[:10]}",
        # A minute ago: answers older than ALERT_RECORD_RETENTION open no task, so a fixed date would stop alerting later
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        "survey": "nps",
        "score": 10,
        "customer": {"id": "c-1", "name": "Purrfect Prints", "segment": "smb", "monthly_value": 100.0},
    }
    return json.dumps(event | fields).encode()


def read_topic(bootstrap: str, topic: str, expect: int, timeout: float = 30.0, settle: float = 0.0) -> list[dict[str, Any]]:
    """Read a topic from the beginning until `expect` records arrived (or timeout), as JSON.

    With `settle`, keep reading that much longer to catch records beyond `expect`.
    """
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)  # Tansu holds a fetch that long
    partitions = [TopicPartition(topic, p) for p in wait_for(lambda: consumer.partitions_for_topic(topic), 10, f"topic {topic}")]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    settle_until = None
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend({"key": r.key, "partition": r.partition, **json.loads(r.value)} for r in batch)
            if len(records) >= expect:
                settle_until = settle_until or time.monotonic() + settle
                if time.monotonic() >= settle_until:
                    break
        return records
    finally:
        consumer.close()


def all_committed(bootstrap: str, topics: dict[str, str], end: dict[int, int]) -> bool:
    """Has the test's worker group committed at least `end` (partition -> offset) on the feedback topic?"""
    now = committed(bootstrap, topics["CONSUMER_GROUP"], topics["FEEDBACK_TOPIC"])
    return all(now.get(p, 0) >= n for p, n in end.items())


def committed(bootstrap: str, group: str, topic: str, partitions: int = 3) -> dict[int, int]:
    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: probe.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)}
    finally:
        probe.close()
