"""The worker's own cost per event, without a broker: µs per event for each step of `Worker.handle`.

Events of the demo's mix (worker/demo/samples.py) are generated once, wrapped in
ConsumerRecord-like objects, and fed to a real Worker whose consumer and producer are
fakes (no broker, no network, no Slack). Each stage runs over the same events:

    model      FeedbackEvent.model_validate_json (what the worker validated with before)
    validate   events.event_data (the worker's validation: the same schema, into plain dicts)
    seen       Checkpoint.seen (per-record offset bookkeeping)
    themes     RuleSet.tag (the comment's themes, for rules, metrics and the task; nothing without `themes:`)
    metrics    Metering.count_data (panes for every window step and dimension value; ts precomputed)
    rules      RuleSet.evaluate_data (the events already tagged)
    handle     Worker.handle, all of the above plus stats, per event
    loop       Worker.run over batches of 500 (handle + the per-batch bookkeeping, commits
               every COMMIT_INTERVAL_SECONDS, the once-a-second tick), from a fake consumer

Rules (bench/mixes.py): `--rules quiet` (default) is the shipped rules made to match nothing
(every rule still evaluates its shipped condition first, so the cost is the real one);
`--rules shipped` is rules/ as shipped (about 1 in 5 events alerts), `--rules burst` makes
every event alert. Alerts go to a sink that answers "sent" at once: the act path's own cost.
`--no-themes` leaves the shipped themes out (and the rule on them): the same events, untagged.

Timing: each stage runs --repeat times and the best run is reported (the machine is shared;
the best run is the least disturbed). For repeatable instruction counts, run one stage under
callgrind: `valgrind --tool=callgrind .venv/bin/python bench/hotpath.py --stage handle --repeat 1`.
For a profile: `.venv/bin/python -m cProfile -s tottime bench/hotpath.py --stage loop --repeat 1`.

This file also runs in a checkout from before events.event_data (copy it there with
bench/mixes.py): validate, metrics and rules then time the model, Metering.count and
RuleSet.evaluate, which the worker used then.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import TopicPartition  # noqa: E402

from bench.mixes import MIXES, rules_for  # noqa: E402
from worker.config import Settings, load_settings  # noqa: E402
from worker.delivery import Outcome  # noqa: E402
from worker.demo import FeedbackGenerator  # noqa: E402
from worker.events import FeedbackEvent  # noqa: E402
from worker.loop import Worker  # noqa: E402
from worker.loop.startup import load_checked  # noqa: E402
from worker.service import build_worker  # noqa: E402

try:
    from worker.events import event_data  # noqa: E402
except ImportError:  # a worker from before event_data (a copy of this file in an older checkout, for "before" figures)
    event_data = None
from worker.metrics import Metering, MetricState  # noqa: E402
from worker.stream.state import StateView  # noqa: E402
from worker.tasks import Cases  # noqa: E402

TOPIC = "feedback.events"
BATCH = 500  # the worker's max_poll_records


class Record(NamedTuple):
    """The fields of kafka-python's ConsumerRecord the worker reads."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None


class _Sent:
    def add_errback(self, _: Any) -> _Sent:
        return self


class StateRecord(NamedTuple):
    key: bytes
    value: bytes | None


class FakeProducer:
    """Counts what is sent; flush is free. What goes to the state topic comes back from `state`."""

    def __init__(self, state_topic: str) -> None:
        self.sent = 0
        self.state_topic = state_topic
        self.state: list[StateRecord] = []

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None, partition: int | None = None) -> _Sent:
        self.sent += 1
        if topic == self.state_topic:
            self.state.append(StateRecord(key or b"", value))
        return _Sent()

    def flush(self, timeout: float | None = None) -> None:
        pass


class FakeConsumer:
    """Hands out `records` in batches of 500 per partition, as poll() does; sets `stop` when they run out."""

    def __init__(self, records: list[Record] | None = None, stop: threading.Event | None = None) -> None:
        self.batches: list[dict[TopicPartition, list[Record]]] = []
        self.stop = stop
        self.listener: Any = None
        for start in range(0, len(records or ()), BATCH):
            batch: dict[TopicPartition, list[Record]] = {}
            for record in (records or [])[start : start + BATCH]:
                batch.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
            self.batches.append(batch)
        self.batches.reverse()
        self.commits = 0

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self.listener = listener

    def assign(self, tps: Any) -> None: ...
    def seek_to_beginning(self, *tps: Any) -> None: ...
    def pause(self, *tps: Any) -> None: ...
    def resume(self, *tps: Any) -> None: ...
    def assignment(self) -> set[TopicPartition]: return set()  # fmt: skip

    def paused(self) -> set[TopicPartition]: return set()  # fmt: skip

    def partitions_for_topic(self, topic: str) -> set[int]: return {0, 1, 2, 3}  # fmt: skip

    def commit(self, offsets: Any = None) -> None:
        self.commits += 1

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        if self.batches:
            return self.batches.pop()
        if self.stop is not None:
            self.stop.set()
        return {}


class StateConsumer(FakeConsumer):
    """Reads back what the fake producer wrote to the state topic, as the worker's state consumer does."""

    def __init__(self, producer: FakeProducer) -> None:
        super().__init__()
        self.producer = producer

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        records, self.producer.state = self.producer.state, []
        return {TopicPartition(self.producer.state_topic, 0): records} if records else {}


class InstantSink:
    """Answers "sent" at once: the act path's own cost, without HTTP."""

    def submit(self, alert: Any, abandon: threading.Event, hold: Any = None) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        future.set_result(Outcome("sent", channel=alert.channel, ts="1.0"))
        return future

    def close(self) -> None: ...


def make_records(events: int, partitions: int, seed: int) -> list[Record]:
    """The demo's mix, valid events only (the invalid path is the DLQ's, not the quiet path)."""
    generator = FeedbackGenerator(seed=seed)
    records = []
    for n, (key, value) in enumerate(generator.stream(events)):
        partition = n % partitions
        records.append(Record(TOPIC, partition, n // partitions, 0, key, value))
    return records


def make_worker(settings: Settings, consumer: FakeConsumer, partitions: int) -> Worker:
    rules, renderer = load_checked(settings)
    producer = FakeProducer(settings.state_topic)
    view = StateView(settings.state_topic, TOPIC, StateConsumer(producer), producer)
    metering = None
    if settings.metrics.enabled:
        metering = Metering(settings.metrics, TOPIC, MetricState(view), settings.metrics_topic, consumer, producer)
    worker = build_worker(
        settings, (rules, renderer), InstantSink(), consumer, producer, view, Cases(view, settings.task_policy), metering=metering
    )
    worker.assigned([TopicPartition(TOPIC, p) for p in range(partitions)])
    return worker


def best(
    label: str, events: int, repeat: int, run: Callable[[Any], None], results: dict[str, float], setup: Callable[[], Any] = lambda: None
) -> None:
    """Time `run(setup())` `repeat` times (setup untimed); report the best."""
    times = []
    for _ in range(repeat):
        prepared = setup()
        gc.collect()
        start = time.perf_counter()
        run(prepared)
        times.append(time.perf_counter() - start)
    results[label] = min(times) / events * 1e6
    spread = f"(best of {repeat}; worst {max(times) / events * 1e6:.2f})" if repeat > 1 else ""
    print(f"  {label:<10}{results[label]:>8.2f} µs/event  {spread}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="runs per stage; the best is reported")
    parser.add_argument("--rules", choices=MIXES, default="quiet", help="rule set (bench/mixes.py; default quiet)")
    parser.add_argument("--no-metrics", dest="metrics", action="store_false")
    parser.add_argument("--no-themes", dest="themes", action="store_false", help="without the shipped themes")
    stages = ["model", "validate", "seen", "themes", "metrics", "rules", "handle", "loop"]
    parser.add_argument("--stage", choices=stages, action="append", help="only these stages (repeatable)")
    args = parser.parse_args()
    chosen = args.stage or stages

    rules_path = rules_for(args.rules, ROOT / "rules", args.metrics, args.themes)
    settings = load_settings(
        None,
        rules_path=rules_path,
        templates_path=ROOT / "templates",
        reload_interval_seconds=0,
        metrics=None if args.metrics else {"enabled": False},
        slack_default_channel="#bench",
    )
    records = make_records(args.events, args.partitions, args.seed)
    values = [r.value for r in records]
    old = event_data is None
    validate = FeedbackEvent.model_validate_json if old else event_data
    parsed = [validate(v) for v in values]  # what the worker counts and evaluates: EventData (the model before)
    stamps = [int((e.occurred_at if old else e["occurred_at"]).timestamp()) for e in parsed]
    tps = [TopicPartition(TOPIC, p) for p in range(args.partitions)]
    by_tp = [(tps[r.partition], r) for r in records]
    gc.collect()
    gc.freeze()  # the inputs live for the whole run; the worker's events do not: keep them out of the collector's way
    print(
        f"{args.events:,} events of the demo's mix, {args.partitions} partitions, rules {args.rules}, "
        f"metrics {'on' if args.metrics else 'off'}, themes {'on' if args.themes else 'off'}; µs of the worker's own code per event:",
        flush=True,
    )
    results: dict[str, float] = {}
    n = len(records)

    if "model" in chosen:
        model = FeedbackEvent.model_validate_json

        def model_all(_: None) -> None:
            for value in values:
                model(value)

        best("model", n, args.repeat, model_all, results)
    if "validate" in chosen:

        def validate_all(_: None) -> None:
            for value in values:
                validate(value)

        best("validate", n, args.repeat, validate_all, results)
    if "seen" in chosen:
        worker = make_worker(settings, FakeConsumer(), args.partitions)
        seen = worker.checkpoint.seen

        def seen_all(_: None) -> None:
            for tp, r in by_tp:
                seen(tp, r.offset)

        best("seen", n, args.repeat, seen_all, results)
    if "themes" in chosen and not old:
        tag = make_worker(settings, FakeConsumer(), args.partitions).rules.tag

        def tag_all(_: None) -> None:
            for data in parsed:
                tag(data)

        best("themes", n, args.repeat, tag_all, results)
    if "metrics" in chosen and settings.metrics.enabled:

        def count_all(worker: Worker) -> None:  # a fresh worker per run: panes start empty, as after a restart
            count, now = worker.metering.count if old else worker.metering.count_data, worker.now
            for data, ts, r in zip(parsed, stamps, records, strict=True):
                count(r.partition, data, ts, r.offset, now)

        best("metrics", n, args.repeat, count_all, results, lambda: make_worker(settings, FakeConsumer(), args.partitions))
    if "rules" in chosen:
        rules = make_worker(settings, FakeConsumer(), args.partitions).rules
        evaluate = rules.evaluate if old else rules.evaluate_data
        matched = sum(evaluate(e) is not None for e in parsed)

        def evaluate_all(_: None) -> None:
            for event in parsed:
                evaluate(event)

        best("rules", n, args.repeat, evaluate_all, results)
        print(f"            ({matched:,} of {n:,} events match)")
    if "handle" in chosen:

        def handle_all(worker: Worker) -> None:
            handle = worker.handle
            for tp, r in by_tp:
                handle(tp, r)

        best("handle", n, args.repeat, handle_all, results, lambda: make_worker(settings, FakeConsumer(), args.partitions))
    if "loop" in chosen:

        def loop_setup() -> tuple[Worker, threading.Event]:
            stop = threading.Event()
            return make_worker(settings, FakeConsumer(records, stop), args.partitions), stop

        def loop(prepared: tuple[Worker, threading.Event]) -> None:
            worker, stop = prepared
            worker.run(stop)
            assert worker.stats.consumed == n, worker.stats.consumed

        best("loop", n, args.repeat, loop, results, loop_setup)
    print(json.dumps({k: round(v, 3) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
