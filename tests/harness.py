"""The in-process harness: a real Worker, built as service.py builds it, on Kafka without a broker (Harness);
and /metrics text as a dict to assert on.

Behaviour checks run here, in milliseconds and with the clock in the test's hands; the tests that start
`feedback-worker run` processes on a broker (tests/e2e, tests/faults) are kept for what only a process
shows: kill -9, SIGTERM and SIGHUP, network faults, the CLI and the demo.

The fake consumer hands out what was appended to it, a batch per poll (as poll() would);
the fake producer appends what it sends to the topics it routes back: the task actions
(so the worker is its own keeper) and the state topic (so StateView.sync finds its marker).
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from kafka import TopicPartition
from kafka.errors import IllegalStateError
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.config import load_settings
from worker.delivery import Outcome
from worker.loop.startup import load_checked
from worker.metrics import Metering, MetricState
from worker.observability import Observability
from worker.service import build_worker
from worker.stream.state import StateView
from worker.tasks import Cases

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


class Record(NamedTuple):
    """The fields of kafka-python's ConsumerRecord that the worker reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class FakeConsumer:
    def __init__(self, partitions: int = 3) -> None:
        self.pending: dict[TopicPartition, list[Record]] = {}
        self.next_offset: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] = set()
        self.high: dict[TopicPartition, int] = {}  # the highwater of the last fetch, as kafka-python keeps it
        self.committed: dict[TopicPartition, int] = {}
        self.partitions = partitions

    def append(self, topic: str, key: bytes | None, value: bytes | None, partition: int = 0) -> None:
        tp = TopicPartition(topic, partition)
        offset = self.next_offset.get(tp, 0)
        self.next_offset[tp] = offset + 1
        self.pending.setdefault(tp, []).append(Record(topic, partition, offset, 0, key, value))

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        batch, self.pending = self.pending, {}
        if not batch and timeout_ms:
            time.sleep(min(timeout_ms, 10) / 1000)  # an idle poll waits, as the real one does
        return batch

    def highwater(self, tp: TopicPartition) -> int | None:
        if tp not in self.assigned:
            raise IllegalStateError("Partition is not assigned")
        return self.high.get(tp)

    def commit(self, offsets: Any = None) -> None:
        self.committed.update({tp: meta.offset for tp, meta in offsets.items()})

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def assign(self, tps: Any) -> None:
        self.assigned = set(tps)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def subscribe(self, topics: Any, listener: Any = None) -> None: ...
    def seek_to_beginning(self, *tps: Any) -> None: ...
    def pause(self, *tps: Any) -> None: ...
    def resume(self, *tps: Any) -> None: ...
    def paused(self) -> set[TopicPartition]: return set()  # fmt: skip

    def close(self, autocommit: bool = False) -> None: ...


class _Sent:
    def add_errback(self, _: Any) -> _Sent:
        return self


class FakeProducer:
    def __init__(self, routes: dict[str, FakeConsumer]) -> None:
        self.routes = routes  # topic -> the consumer that reads it back
        self.sent: dict[str, int] = {}

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> _Sent:
        self.sent[topic] = self.sent.get(topic, 0) + 1
        if topic in self.routes:
            self.routes[topic].append(topic, key, value)
        return _Sent()

    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


class FakeSink:
    """Slack that answers at once: refuses the channels in `refuse`, accepts the rest; counts retries like SlackSink."""

    def __init__(self, refuse: set[str] = frozenset(), retried: dict[str, int] | None = None) -> None:
        self.refuse = refuse
        self.retried = retried or {}
        self.posted: list[str] = []

    def submit(self, alert: Any, abandon: Any, hold: Any = None) -> Future[Outcome]:
        refused = alert.channel in self.refuse
        if not refused:
            self.posted.append(alert.channel)
        return _done(Outcome("undeliverable", reason="channel_not_found") if refused else Outcome("sent", channel=alert.channel, ts="1.0"))

    def find(self, search: Any, abandon: Any) -> Future[Outcome]:
        return _done(Outcome("found"))

    def retries(self) -> dict[str, int]:
        return dict(self.retried)

    def close(self) -> None: ...


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future


ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def event(n: int, survey: str = "nps", score: int = 10) -> bytes:
    return json.dumps(
        {
            "event_id": f"e-{n}",
            "occurred_at": (NOW - timedelta(minutes=1)).isoformat(),
            "survey": survey,
            "score": score,
            "customer": {"id": f"c-{n}", "name": "Purrfect Prints", "segment": "smb", "monthly_value": 100.0},
        }
    ).encode()


#: partition -> what is fed to it: quiet answers, NPS detractors (#cx-alerts), high effort (#cx-effort, refused), garbage
FEED: dict[int, list[bytes]] = {
    0: [event(1), event(2), event(3, score=3), b"{", event(4, "ces", 5)],
    1: [event(5), event(6, score=0), event(7, score=6), b"not json"],
    2: [event(8), event(9), event(10, "ces", 4)],
}


class Harness:
    """A Worker as service.py builds it, on fake Kafka, with its clock in the test's hands."""

    def __init__(self) -> None:
        self.settings = load_settings(
            None,
            environ={},
            rules_path=ROOT / "rules",
            templates_path=ROOT / "templates",
            feedback_topic="fb",
            task_actions_topic="actions",
            state_topic="state",
            commit_interval_seconds=0.05,
            channel_rate_limit_per_minute=0,
            reload_interval_seconds=0,
            http_port=0,
        )
        self.now = NOW
        self.consumer, state_consumer = FakeConsumer(), FakeConsumer()
        self.producer = FakeProducer({"actions": self.consumer, "state": state_consumer})
        self.sink = FakeSink(refuse={"#cx-effort"}, retried={"#cx-alerts": 4})
        rules, renderer = load_checked(self.settings)
        view = StateView("state", "fb", state_consumer, self.producer)
        metering = Metering(self.settings.metrics, "fb", MetricState(view), self.settings.metrics_topic, self.consumer, self.producer)
        self.worker = build_worker(
            self.settings,
            (rules, renderer),
            self.sink,
            self.consumer,
            self.producer,
            view,
            Cases(view, self.settings.task_policy),
            metering=metering,
            clock=lambda: self.now,
        )
        self.observability = Observability(self.settings)
        self.observability.attach(self.worker, self.sink)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)

    def start(self, partitions: list[TopicPartition]) -> None:
        self.consumer.assign(partitions)
        self.worker.assigned(partitions)  # what the rebalance listener does on the join
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()

    def scrape(self) -> dict[Any, float]:
        return parse(generate_latest(self.observability.registry).decode())


def parse(text: str) -> Samples:
    """/metrics as {(sample name, sorted labels): value}, through Prometheus' own text parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """label value -> sample value, for the samples of `name` (other labels ignored)."""
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}
