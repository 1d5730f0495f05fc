"""The in-process harness: a real Worker, built as service.py builds it, on Kafka without a broker (Harness);
and /metrics text as a dict to assert on.

Behaviour checks run here, in milliseconds and with the clock in the test's hands; the tests that start
`feedback-worker run` processes on a broker (tests/e2e, tests/faults) are kept for what only a process
shows: kill -9, SIGTERM and SIGHUP, network faults, the CLI and the demo.

The fake consumer hands out what was appended to it, a batch per poll (as poll() would);
the fake producer keeps what it sends, per topic, and appends it to the topics it routes back:
the task actions (so the worker is its own keeper) and the state topic (so StateView.sync finds
its marker). Slack is a FakeSink that answers at once, or, with `slack=`, tests/fake_slack's
FakeSlack reached through the real SlackSink (slack-sdk over HTTP), as `feedback-worker run` posts.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from kafka import TopicPartition
from kafka.errors import IllegalStateError
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.fake_slack import FakeSlack
from worker.config import load_settings
from worker.delivery import Outcome, Sink
from worker.loop import Reloader
from worker.loop.startup import load_checked
from worker.metrics import Metering, MetricState
from worker.observability import Observability
from worker.service import build_worker, make_sink
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
        self._lock = threading.Lock()  # a test appends while the worker's thread polls

    def append(self, topic: str, key: bytes | None, value: bytes | None, partition: int = 0) -> None:
        tp = TopicPartition(topic, partition)
        with self._lock:
            offset = self.next_offset.get(tp, 0)
            self.next_offset[tp] = offset + 1
            self.pending.setdefault(tp, []).append(Record(topic, partition, offset, 0, key, value))

    def all_committed(self, topic: str) -> bool:
        """Has the worker committed every record appended to `topic` (one past its offset, as Kafka counts)?"""
        with self._lock:
            appended = {tp: n for tp, n in self.next_offset.items() if tp.topic == topic}
        return all(self.committed.get(tp, 0) >= n for tp, n in appended.items())

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        with self._lock:
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
        self.records: dict[str, list[tuple[bytes | None, bytes | None]]] = {}  # topic -> (key, value), in the order sent

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, partition: int | None = None) -> _Sent:
        self.sent[topic] = self.sent.get(topic, 0) + 1
        self.records.setdefault(topic, []).append((key, value))
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
    """A Worker as service.py builds it, on fake Kafka, with its clock in the test's hands.

    `slack`: post through the real SlackSink to this fake Slack (default: a FakeSink that answers at
    once). `config`: a worker config file, as `run --config` reads it; `settings`: settings by name,
    as the environment would set them. `live`: the clock runs (real time plus what `advance` added);
    otherwise it stands at `now` until the test moves it.
    """

    def __init__(self, *, slack: FakeSlack | None = None, config: Path | None = None, live: bool = False, **settings: Any) -> None:
        if slack is not None:
            settings |= {"slack_bot_token": slack.token, "slack_api_url": slack.url}
        self.settings = load_settings(
            config,
            environ={},
            **{
                "rules_path": ROOT / "rules",
                "templates_path": ROOT / "templates",
                "feedback_topic": "fb",
                "task_actions_topic": "actions",
                "state_topic": "state",
                "commit_interval_seconds": 0.05,
                "channel_rate_limit_per_minute": 0,
                "reload_interval_seconds": 0,
                "http_port": 0,
            }
            | settings,
        )
        self.now = NOW
        self.live = live
        self.skew = timedelta()
        self.consumer, state_consumer = FakeConsumer(), FakeConsumer()
        self.producer = FakeProducer({"actions": self.consumer, "state": state_consumer})
        self.observability = Observability(self.settings)
        self.sink: Any = FakeSink(refuse={"#cx-effort"}, retried={"#cx-alerts": 4}) if slack is None else self._slack_sink()
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
            reloader=Reloader(self.settings, load_checked, self.settings.reload_interval_seconds),
            clock=self.clock,
        )
        self.observability.attach(self.worker, self.sink)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.worker.run, args=(self.stop,), daemon=True)
        self._closed = False

    def _slack_sink(self) -> Sink:
        return make_sink(self.settings, self.observability.observe)

    def clock(self) -> datetime:
        return datetime.now(UTC) + self.skew if self.live else self.now

    def advance(self, delta: timedelta) -> None:
        """Move the worker's clock on (timers, SLAs, recovery windows fall due on its next tick, within a second)."""
        if self.live:
            self.skew += delta
        else:
            self.now += delta

    def start(self, partitions: list[TopicPartition] | None = None) -> Harness:
        """Run the worker on `partitions` (default: the feedback topic's three and the actions topic, all of them)."""
        if partitions is None:
            partitions = [TopicPartition("fb", p) for p in range(self.consumer.partitions)] + [TopicPartition("actions", 0)]
        self.consumer.assign(partitions)
        self.worker.assigned(partitions)  # what the rebalance listener does on the join
        self.thread.start()
        return self

    def send(self, value: bytes, key: bytes | None = None, topic: str = "fb") -> None:
        """A record on `topic`, in the partition a Kafka producer would pick for its key (one for the actions topic)."""
        partitions = self.consumer.partitions if topic == "fb" else 1
        self.consumer.append(topic, key, value, zlib.crc32(key) % partitions if key is not None else 0)

    def records(self, topic: str) -> list[dict[str, Any]]:
        """What the worker produced to `topic` so far, as JSON with its key (tombstones left out), as a consumer reads it."""
        return [{"key": key, **json.loads(value)} for key, value in list(self.producer.records.get(topic, [])) if value is not None]

    def finish(self) -> None:
        """Stop the worker as SIGTERM does (what is in hand is finished and committed) and close its Slack sink."""
        self.stop.set()
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        if not self._closed:
            self._closed = True
            self.sink.close()

    def scrape(self) -> dict[Any, float]:
        return parse(generate_latest(self.observability.registry).decode())


@contextmanager
def running(**options: Any) -> Iterator[Harness]:
    """A running Harness (Harness(**options).start()), stopped at the end of the block, whatever happened in it."""
    harness = Harness(**options).start()
    try:
        yield harness
    finally:
        harness.stop.set()
        harness.thread.join(timeout=10)
        if not harness._closed:
            harness._closed = True
            harness.sink.close()


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
