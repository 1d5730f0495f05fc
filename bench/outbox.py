"""Issue 18, "Slack never holds the stream back": a Slack outage and an alert storm, measured from outside the worker.

Everything runs locally, as in throughput.py: the embedded broker (Tansu), the real worker
(worker.service.serve in a thread of this process, unmodified, no hooks) and a fake of the Slack
Web API in a child process. The worker is only watched from outside: the producer's acks (how many
events are on the feedback topic; Tansu's end_offsets() is wrong), its consumer group's committed
offsets on the feedback topic (summed over partitions), the `followup.opened` records on the
follow-up topic, the metric snapshots on the metrics topic, and what the fake Slack accepted
(every message names its event ids in its metadata: `event_id`, or `event_ids` for a summary).
Each event gets a customer of its own, so each detractor opens its own task (none joins another).

--scenario outage
    After a warm-up alert shows the worker has joined, the fake Slack goes down: it answers EVERY
    Web API call with HTTP 503 {"ok": false, "error": "service_unavailable"} (a transient failure
    the worker retries; connections are accepted). For --down seconds the bench produces --rate
    events a second, one in five an NPS detractor (score 0-6; the shipped rules alert on each),
    the rest promoters without a comment (no rule matches). Then Slack comes back and production
    STOPS, so the recovery figures are the time to deliver the outage's backlog alone. Printed
    every 10 s: events produced, offsets committed by the group, `followup.opened` records, and
    the answers in the latest metric snapshots (the overall 1h window: `1h|<start>|*`, summed over
    the hours the run spans). After Slack returns: seconds until every owed alert (one per
    detractor) has reached Slack, until every offset is committed, every task published and the
    snapshots count every answer; and how many event ids reached Slack more than once.
    The channel rate limit is off by default here (--rate-limit 0): every detractor owes its own
    message, as in throughput.py --latency.

--scenario storm
    After the warm-up, a burst of --events NPS detractors that one rule routes to one channel
    (#cx-storm) with the channel rate limit at its default (CHANNEL_RATE_LIMIT_PER_MINUTE, 20 a
    minute unless set; or --rate-limit), produced as fast as the producer goes; halfway through,
    one enterprise answer marked `attributes.bench: vip` that a critical rule routes to #vip.
    Printed every 10 s and at the end: the rate at which the stream went through (committed
    offsets over time), the seconds from sending the #vip answer to the fake Slack receiving its
    alert, the Slack messages (alerts, summaries), and whether every detractor is in Slack (alone
    or in a summary) once the worker has finished.

Both exit 1, with the reason, if something is lost or not finished within --timeout seconds
(outage: after Slack returns; storm: after the burst starts), or if the worker fails.
The worker's other settings come from the environment as usual (e.g. MAX_IN_FLIGHT_ALERTS,
SLACK_CONCURRENCY, COMMIT_INTERVAL_SECONDS); the script sets the broker, topics' partitions,
rules, templates, Slack URL and token, HTTP_PORT=0 (no /metrics server) and metric snapshots
every --emit-every seconds (default 5; the worker's default is 30).

Usage: .venv/bin/python bench/outbox.py --scenario outage [--down 60 --rate 200]
       .venv/bin/python bench/outbox.py --scenario storm [--events 50000]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from bench.throughput import BenchError, CpuClock, SlackProcess, say  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402
from worker.broker import EmbeddedBroker, common_config, ensure_topics, make_producer  # noqa: E402
from worker.config import Settings, load_settings  # noqa: E402
from worker.demo import FeedbackGenerator  # noqa: E402
from worker.logs import setup_logging  # noqa: E402
from worker.metrics import MetricsConfig  # noqa: E402
from worker.service import serve  # noqa: E402

ROW_EVERY_S = 10.0
SAMPLE_EVERY_S = 0.5
WARMUP_ID = "bench-warmup"
VIP_ID = "storm-vip"
ALERT_EVERY = 5  # outage: one event in five is a detractor
SETTLE_S = 3.0  # after everything arrived: time for a late duplicate to show up
DOWN_ERROR = "service_unavailable"
STORM_CHANNEL, VIP_CHANNEL, WARMUP_CHANNEL = "#cx-storm", "#vip", "#bench-warmup"


# -- the fake Slack, in a child process ---------------------------------------------------------


class OutageSlack(FakeSlack):
    """tests/fake_slack's FakeSlack that can be down (every Web API call answered HTTP 503
    service_unavailable, connections still accepted), and that logs each chat.postMessage it
    accepts: when it arrived, its metadata's event_type and the event ids it names."""

    def __init__(self, token: str) -> None:
        super().__init__(token=token, record_requests=False)
        self.down = False
        self.refused = 0  # requests answered 503 while down
        self.accepted: list[tuple[float, str, list[str], list[str]]] = []  # (arrived, event_type, event ids, slots)

    def _answer(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        at = time.time()
        if self.down:
            with self._lock:
                self.refused += 1
            return 503, {}, {"ok": False, "error": DOWN_ERROR}
        status, extra, answer = super()._answer(path, headers, body)
        if status == 200 and answer.get("ok") and urlsplit(path).path.endswith("/chat.postMessage"):
            kind, ids, slots = message_events(headers.get("Content-Type", ""), body)
            with self._lock:
                self.accepted.append((at, kind, ids, slots))
        return status, extra, answer


def message_events(content_type: str, body: bytes) -> tuple[str, list[str], list[str]]:
    """(event_type, event ids, slots and task ids) of a chat.postMessage, from its metadata's event_payload: an alert or
    a reply names its `event_id`, a summary its `event_ids`; each lists its `slots` (a task id, or <task>/<event> for an
    answer in a task's thread) and task ids (`task_id`, `task_ids`)."""
    try:
        if content_type.startswith("application/json"):
            params = json.loads(body or b"{}")
        else:
            params = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        metadata = params.get("metadata") or {}
        metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
        payload = metadata.get("event_payload") or {}
        ids = payload.get("event_ids") or ([payload["event_id"]] if payload.get("event_id") else [])
        slots = list(payload.get("slots") or []) + list(payload.get("task_ids") or [])
        slots += [payload["task_id"]] if payload.get("task_id") else []
        return str(metadata.get("event_type") or "?"), [str(i) for i in ids], [str(s) for s in slots]
    except (ValueError, AttributeError, TypeError):
        return "?", [], []


def _serve_outage_slack(pipe: Any, token: str) -> None:
    with OutageSlack(token) as slack:
        pipe.send(slack.url)
        while (command := pipe.recv()) != "stop":
            name, arg = command
            if name == "down":
                slack.down = bool(arg)
                pipe.send(slack.down)
            else:  # ("since", n): the messages accepted after the first n, and the counters
                with slack._lock:
                    pipe.send((slack.accepted[arg:], slack.refused, slack.attempts))


class OutageSlackProcess(SlackProcess):
    """throughput.SlackProcess with OutageSlack in the child: switched down and up over the pipe;
    `update()` fetches what it accepted since the last call."""

    def child(self) -> Any:
        return _serve_outage_slack

    def __enter__(self) -> OutageSlackProcess:
        super().__enter__()
        self.messages = 0  # chat.postMessage accepted
        self.kinds: Counter[str] = Counter()  # event_type -> messages accepted
        self.first: dict[str, float] = {}  # event id -> time.time() its first message arrived
        self.times: Counter[str] = Counter()  # event id -> messages naming it
        self.waiting: list[tuple[float, set[str], set[str]]] = []  # (arrived, events named, task ids not yet known)
        self.refused = 0
        self.posts_tried = 0  # chat.postMessage requests, refused ones included
        return self

    def set_down(self, down: bool) -> float:
        """Down (every call answered 503) or up again; returns time.time() once the switch is made."""
        self.pipe.send(("down", down))
        self.pipe.recv()
        return time.time()

    def update(self, tasks: dict[str, str]) -> None:
        """Fetch the messages accepted since the last call. Each names its events once, however it names them: by event
        id, by the <task>/<event> slot of an answer in a thread, or by task id (`tasks`: task id -> event id, from the
        followup.opened records; a task id not known yet is resolved at a later call)."""
        self.pipe.send(("since", self.messages))
        new, self.refused, self.posts_tried = self.pipe.recv()
        for at, kind, ids, slots in new:
            self.kinds[kind] += 1
            named, unknown = set(ids), set()
            for slot in slots:
                task, _, ref = slot.partition("/")
                if ref and ":" not in ref:
                    named.add(ref)  # an answer in the task's thread
                elif not ref and ":" not in task:
                    unknown.add(task)  # a task's alert, or its place in a summary; others are notes, metric alerts, digests
            for event_id in named:
                self._arrived(event_id, at)
            self.waiting.append((at, named, unknown))
        self.messages += len(new)
        for at, named, unknown in self.waiting:
            for task in [t for t in unknown if t in tasks]:
                unknown.discard(task)
                if tasks[task] not in named:
                    named.add(tasks[task])
                    self._arrived(tasks[task], at)
        self.waiting = [item for item in self.waiting if item[2]]

    def _arrived(self, event_id: str, at: float) -> None:
        self.first[event_id] = min(self.first.get(event_id, at), at)
        self.times[event_id] += 1

    def duplicates(self) -> int:
        return sum(1 for n in self.times.values() if n > 1)


# -- the worker, seen from outside --------------------------------------------------------------


class Produced:
    """Sends events; the feedback topic's end offsets from the acks (Tansu's end_offsets() is wrong)."""

    def __init__(self, settings: Settings, **producer_config: Any) -> None:
        self.topic = settings.feedback_topic
        self.producer = make_producer(settings, client_id=BENCH_CLIENT, **producer_config)
        self.end: dict[int, int] = {}
        self.errors: list[Exception] = []
        self.lock = threading.Lock()

    def send(self, event: dict[str, Any]) -> None:
        value = json.dumps(event, ensure_ascii=False).encode()
        future = self.producer.send(self.topic, key=event["customer"]["id"].encode(), value=value)
        future.add_callback(self._acked).add_errback(self.errors.append)

    def _acked(self, meta: Any) -> None:
        with self.lock:
            self.end[meta.partition] = max(self.end.get(meta.partition, 0), meta.offset + 1)

    @property
    def total(self) -> int:
        """Events acknowledged (offsets on the feedback topic, which only this bench writes to)."""
        with self.lock:
            return sum(self.end.values())

    def check(self) -> None:
        if self.errors:
            raise BenchError(f"{len(self.errors)} events were not acknowledged, the first: {self.errors[0]!r}")

    def close(self) -> None:
        self.producer.flush()
        self.producer.close()


BENCH_CLIENT = "bench-outbox"  # the client_id of this bench's Kafka clients: their IO threads are not the worker's


def _bench_config(settings: Settings) -> dict[str, Any]:
    return common_config(settings) | {"client_id": BENCH_CLIENT}


class WorkerCpu:
    """CPU seconds of the worker's threads alone (its loop, Slack sink threads, its Kafka clients' IO threads): every
    thread of this process but the main thread, the bench's producer thread and the bench's Kafka IO threads."""

    def __init__(self) -> None:
        self.start: dict[int, float] = {}

    @staticmethod
    def _threads() -> dict[int, float]:
        seconds = {}
        for thread in threading.enumerate():
            if thread is threading.main_thread() or thread.name == "producer" or BENCH_CLIENT in thread.name:
                continue
            try:
                seconds[thread.ident] = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
            except (OSError, TypeError):  # ended meanwhile
                pass
        return seconds

    def reset(self) -> None:
        self.start = self._threads()

    def seconds(self) -> float:
        """Since reset(), over the threads alive now (one that ended since took its CPU time with it)."""
        return sum(s - self.start.get(ident, 0.0) for ident, s in self._threads().items())


def _reader(settings: Settings, topic: str) -> KafkaConsumer:
    consumer = KafkaConsumer(**_bench_config(settings), enable_auto_commit=False, max_poll_records=5000, fetch_max_wait_ms=50)
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    if not partitions:
        raise BenchError(f"topic {topic} has no partitions")
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer


class Outside:
    """The worker's group's committed offsets on the feedback topic, the followup.opened records, and
    the answers in the latest overall 1h metric snapshots (`1h|<start>|*`, summed over the hours since
    the bench started: usually one)."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        self.probe = KafkaConsumer(**_bench_config(settings), group_id=settings.consumer_group, enable_auto_commit=False)
        self.tps = [TopicPartition(settings.feedback_topic, p) for p in range(partitions)]
        self.followups = _reader(settings, settings.followup_topic)
        self.metrics = _reader(settings, settings.metrics_topic)
        self.opened = 0
        self.tasks: dict[str, str] = {}  # task id -> event id, from the followup.opened records
        self.snapshots: dict[datetime, int] = {}  # 1h window start -> responses in its latest overall snapshot
        self.snapshots_seen = 0
        now = int(time.time())
        self.since = datetime.fromtimestamp(now - now % 3600, UTC)

    def committed(self) -> int:
        return sum(self.probe.committed(tp) or 0 for tp in self.tps)

    def poll(self) -> None:
        for _ in range(20):  # until caught up (a storm publishes thousands of tasks a second)
            batch = self.followups.poll(timeout_ms=20)
            for records in batch.values():
                for record in records:
                    if b'"followup.opened"' in (record.value or b""):
                        task = json.loads(record.value)
                        if task.get("type") == "followup.opened":
                            self.opened += 1
                            self.tasks[str(task.get("task_id"))] = str(task.get("event_id"))
            if not batch:
                break
        for _ in range(20):
            batch = self.metrics.poll(timeout_ms=20)
            for records in batch.values():
                for record in records:
                    self.snapshots_seen += 1
                    parts = (record.key or b"").decode().split("|")  # <size>|<window start>|<dimension or *>
                    if len(parts) == 3 and parts[0] == "1h" and parts[2] == "*" and record.value:
                        self.snapshots[datetime.fromisoformat(parts[1])] = json.loads(record.value)["responses"]
            if not batch:
                break

    @property
    def answers(self) -> int:
        return sum(n for start, n in self.snapshots.items() if start >= self.since)

    def close(self) -> None:
        for consumer in (self.probe, self.followups, self.metrics):
            consumer.close()


class Sample:
    """One look from outside, relative to the baseline taken after the warm-up."""

    def __init__(self, at: float, produced: int, committed: int, opened: int, answers: int, slack: OutageSlackProcess) -> None:
        self.at, self.produced, self.committed, self.opened, self.answers = at, produced, committed, opened, answers
        self.messages, self.refused, self.in_slack = slack.messages, slack.refused, len(slack.first)


class Watch:
    """The worker thread, its outside view, and the baseline the figures are counted from."""

    def __init__(self, settings: Settings, partitions: int, slack: OutageSlackProcess, produced: Produced) -> None:
        self.settings, self.slack, self.produced = settings, slack, produced
        self.stop, self.result = threading.Event(), {}
        self.thread = threading.Thread(target=self._work, name="worker")
        self.outside = Outside(settings, partitions)
        self.base = (0, 0, 0, 0, 0, 0)  # produced, committed, opened, answers, messages, ids in Slack
        self.base_kinds: Counter[str] = Counter()  # Slack messages by event_type

    def _work(self) -> None:
        try:
            self.result["stats"] = serve(self.settings, self.stop)
        except BaseException as err:  # reported instead of hanging the bench
            self.result["error"] = err
            self.stop.set()

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> None:
        if "error" in self.result:
            raise BenchError(f"the worker failed: {self.result['error']!r}")
        if self.stop.is_set():
            raise BenchError("the worker stopped")

    def sample(self, at: float) -> Sample:
        self.alive()
        self.outside.poll()
        self.slack.update(self.outside.tasks)
        p, c, o, a, _, _ = self.base
        return Sample(
            at, self.produced.total - p, self.outside.committed() - c, self.outside.opened - o, self.outside.answers - a, self.slack
        )

    def warm_up(self, event: dict[str, Any], timeout_s: float = 90.0) -> float:
        """Send one alerting event; wait until it is in Slack, committed, its task published and counted in a
        snapshot: the worker has joined, and the baseline is taken. Returns the seconds it took."""
        start = time.monotonic()
        self.produced.send(event)
        self.produced.producer.flush()
        deadline, missing = start + timeout_s, ["the worker to start"]
        while time.monotonic() < deadline:
            self.alive()
            self.outside.poll()
            self.slack.update(self.outside.tasks)
            committed = self.outside.committed()
            missing = [
                what
                for what, ok in (
                    ("its alert in Slack", WARMUP_ID in self.slack.first),
                    ("its offset committed", committed >= self.produced.total),
                    ("its followup.opened record", self.outside.opened >= 1),
                    ("a metric snapshot counting it", self.outside.answers >= 1),
                )
                if not ok
            ]
            if not missing:
                self.base = (
                    self.produced.total,
                    committed,
                    self.outside.opened,
                    self.outside.answers,
                    self.slack.messages,
                    len(self.slack.first),
                )
                self.base_kinds = Counter(self.slack.kinds)
                return time.monotonic() - start
            time.sleep(0.2)
        raise BenchError(f"warm-up: still waiting after {timeout_s:.0f}s for {', '.join(missing)}")

    def finish(self) -> None:
        """Stop the worker (if started) and the probes. A failure of the worker is raised by the next sample."""
        self.stop.set()
        if self.thread.ident is not None:
            self.thread.join(timeout=self.settings.shutdown_timeout_seconds + 30)
            if self.thread.is_alive():
                say("  (the worker did not stop within 30s of the stop event)")
        self.outside.close()


# -- settings, rules, events ---------------------------------------------------------------------


def bench_settings(broker: EmbeddedBroker, slack: SlackProcess, rules_path: Path, emit_every_s: float, **overrides: Any) -> Settings:
    """As throughput.base_settings, plus snapshots every `emit_every_s` and no HTTP server (port clashes)."""
    return load_settings(
        None,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
        rules_path=rules_path,
        templates_path=ROOT / "templates",
        slack_bot_token=slack.token,
        slack_api_url=slack.url,
        metrics=MetricsConfig(enabled=True, emit_every=timedelta(seconds=emit_every_s)),
        http_port=0,
        **overrides,
    )


def storm_rules() -> Path:
    """Every NPS detractor to one channel; a critical rule for the #vip answer; one for the warm-up."""
    out = Path(tempfile.mkdtemp(prefix="bench-rules-storm-"))
    rules = [
        {
            "id": "bench-warmup",
            "description": "The bench's first answer: the worker has joined",
            "when": {"event_id": WARMUP_ID},
            "severity": "critical",
            "followup": {"owner": "bench", "due_in": "1h"},
            "alert": {"channel": WARMUP_CHANNEL},
        },
        {
            "id": "storm-detractor",
            "description": "NPS detractor (storm)",
            "when": {"survey": "nps", "score": {"lte": 6}},
            "severity": "high",
            "followup": {"owner": "cx-oncall", "due_in": "24h"},
            "alert": {"channel": STORM_CHANNEL, "template": "detractor.slack.j2"},
        },
        {
            "id": "vip-answer",
            "description": "Enterprise answer marked VIP",
            "when": {"all": [{"customer.segment": {"in": ["enterprise"]}}, {"attributes.bench": "vip"}]},
            "severity": "critical",
            "followup": {"owner": "enterprise-cs", "due_in": "4h"},
            "alert": {"channel": VIP_CHANNEL},
        },
    ]
    (out / "storm.yaml").write_text(yaml.safe_dump({"rules": rules}, allow_unicode=True, sort_keys=False))
    return out


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def answer(generator: FeedbackGenerator, n: int, event_id: str, score: int, comment: str | None = None) -> dict[str, Any]:
    """An NPS answer shaped like the demo's, from a customer of its own (so a detractor opens its own task)."""
    base = generator.event(n)
    event = {
        "event_id": event_id,
        "occurred_at": now_iso(),
        "survey": "nps",
        "score": score,
        "customer": base["customer"] | {"id": f"bench-c-{n:07d}"},
        "channel": base["channel"],
        "touchpoint": base["touchpoint"],
        "attributes": base["attributes"],
    }
    if comment is not None:
        event["comment"] = comment
    return event


def warmup_event() -> dict[str, Any]:
    return {
        "event_id": WARMUP_ID,
        "occurred_at": now_iso(),
        "survey": "nps",
        "score": 3,
        "comment": "Printer ink arrived late again",
        "customer": {"id": "bench-warmup", "segment": "smb", "monthly_value": 100.0},
    }


# -- printing ------------------------------------------------------------------------------------


def table(rows: list[tuple[str, str]]) -> None:
    say("\n" + "═" * 78 + "\n" + "\n".join(f"{name:<34}{value}" for name, value in rows) + "\n" + "═" * 78)


def seconds_or(value: float | None, missing: str = "not reached") -> str:
    return missing if value is None else f"{value:>8.1f} s"


# -- scenario A: outage ------------------------------------------------------------------------


def outage(args: argparse.Namespace) -> int:
    rate_limit = 0 if args.rate_limit is None else args.rate_limit
    problems: list[str] = []
    with OutageSlackProcess() as slack, EmbeddedBroker() as broker:
        settings = bench_settings(broker, slack, ROOT / "rules", args.emit_every, channel_rate_limit_per_minute=rate_limit)
        quiet_logs(settings)
        ensure_topics(settings, [settings.feedback_topic], partitions=args.partitions)
        ensure_topics(settings, [settings.followup_topic, settings.metrics_topic, settings.dlq_topic], compacted=[settings.metrics_topic])
        produced = Produced(settings, linger_ms=0)  # paced: each event leaves at once
        watch = Watch(settings, args.partitions, slack, produced)
        cpu, worker_cpu = CpuClock({"broker": broker.process.pid, "fake Slack": slack.process.pid}), WorkerCpu()
        say(
            f"▶ broker {broker.bootstrap_servers}; {args.partitions} partitions; shipped rules, channel rate limit "
            f"{rate_limit or 'off'}, MAX_IN_FLIGHT_ALERTS {settings.max_in_flight_alerts}, commits every "
            f"{settings.commit_interval_seconds:g}s, snapshots every {args.emit_every:g}s; waiting for the worker to join"
        )
        try:
            watch.start()
            joined_s = watch.warm_up(warmup_event())
            say(f"  warm-up alert in Slack, committed, task published and counted after {joined_s:.1f}s")

            generator, owed = FeedbackGenerator(seed=args.seed), []
            total = int(args.rate * args.down)

            def produce() -> None:
                for n in range(total):
                    pause = t0 + n / args.rate - time.monotonic()
                    if pause > 0:
                        time.sleep(pause)  # pacing the producer, not synchronisation
                    if n % ALERT_EVERY == 0:
                        event = answer(generator, n, f"out-{n:07d}", (n // ALERT_EVERY) % 7, "Printer ink arrived late again")
                        owed.append(event["event_id"])
                    else:
                        event = answer(generator, n, f"out-{n:07d}", 9 + n % 2)  # a promoter without a comment: no rule
                    produced.send(event)
                produced.producer.flush()

            say(
                f"▶ Slack down (HTTP 503 {DOWN_ERROR} to every call) for {args.down:g}s while producing {args.rate:g} events/s "
                f"({total:,} events, {len(range(0, total, ALERT_EVERY)):,} detractors); then Slack is back and production stops"
            )
            header = (
                f"  {'t (s)':>7}  {'phase':<9}{'produced':>10}{'committed':>11}{'lag':>8}{'tasks':>8}{'snapshot':>10}"
                f"{'Slack msgs':>12}{'503s':>7}"
            )
            say(
                "  (since the warm-up: events produced (acked), offsets committed by the group, lag = produced - committed, "
                "followup.opened records, answers in the latest 1h snapshots, messages Slack accepted; 503s: calls refused)"
            )
            say(header + "\n  " + "─" * (len(header) - 2))
            slack.set_down(True)
            t0 = time.monotonic()
            cpu.reset()
            worker_cpu.reset()
            producer = threading.Thread(target=produce, name="producer")
            producer.start()
            rows: list[Sample] = []

            def row(sample: Sample, phase: str) -> None:
                rows.append(sample)
                say(
                    f"  {sample.at:>7.1f}  {phase:<9}{sample.produced:>10,}{sample.committed:>11,}"
                    f"{sample.produced - sample.committed:>8,}{sample.opened:>8,}{sample.answers:>10,}"
                    f"{sample.messages - watch.base[4]:>12,}{sample.refused:>7,}"
                )

            next_row = ROW_EVERY_S
            while producer.is_alive():
                producer.join(timeout=SAMPLE_EVERY_S)
                at = time.monotonic() - t0
                if at >= next_row and producer.is_alive():
                    row(watch.sample(at), "outage")
                    next_row += ROW_EVERY_S
            produced.check()
            end_of_outage = watch.sample(time.monotonic() - t0)
            up_wall = slack.set_down(False)
            t_up = time.monotonic()
            row(end_of_outage, "Slack up")
            events, owed_set = produced.total - watch.base[0], set(owed)

            # Recovery: until every owed alert is in Slack, every offset committed, every task published, every answer counted.
            reached: dict[str, float | None] = dict.fromkeys(("alerts", "committed", "tasks", "snapshot"))
            deadline = t_up + args.timeout
            next_row = (int((t_up - t0) / ROW_EVERY_S) + 1) * ROW_EVERY_S
            sample = end_of_outage
            while time.monotonic() < deadline:
                at = time.monotonic() - t0
                sample = watch.sample(at)
                since_up = time.monotonic() - t_up
                if reached["alerts"] is None and owed_set <= slack.first.keys():
                    reached["alerts"] = max((slack.first[i] for i in owed_set), default=up_wall) - up_wall
                for name, ok in (
                    ("committed", sample.committed >= events),
                    ("tasks", sample.opened >= len(owed)),
                    ("snapshot", sample.answers >= events),
                ):
                    if reached[name] is None and ok:
                        reached[name] = since_up
                if at >= next_row:
                    row(sample, "recovery")
                    next_row += ROW_EVERY_S
                if all(v is not None for v in reached.values()):
                    break
                time.sleep(SAMPLE_EVERY_S)
            finished = all(v is not None for v in reached.values())
            cpu_used, worker_s = cpu.used(), worker_cpu.seconds()
            if finished:
                time.sleep(SETTLE_S)  # a late duplicate
            final = watch.sample(time.monotonic() - t0)
            row(final, "end")
        finally:
            watch.finish()
            produced.close()

    missing = sorted(owed_set - slack.first.keys())
    if not finished:
        problems.append(
            f"not finished in {args.timeout:g} s after Slack came back: "
            + ", ".join(what for what, v in reached.items() if v is None)
            + " not reached"
        )
    if missing:
        problems.append(f"{len(missing):,} of {len(owed):,} owed alerts never reached Slack (e.g. {', '.join(missing[:3])})")
    if final.committed < events:
        problems.append(f"{events - final.committed:,} of {events:,} offsets not committed")
    if final.opened < len(owed):
        problems.append(f"{len(owed) - final.opened:,} of {len(owed):,} followup.opened records missing")
    if final.answers < events:
        problems.append(f"the snapshots count {final.answers:,} of {events:,} answers")

    during = [r for r in rows if r.at <= end_of_outage.at]
    dupes = slack.duplicates()
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in (slack.kinds - watch.base_kinds).most_common()) or "none"
    table(
        [
            ("scenario", f"outage: Slack answered 503 for {end_of_outage.at:.1f}s, then up; production stopped then"),
            (
                "events produced",
                f"{events:>8,} at {events / max(end_of_outage.at, 1e-9):,.0f}/s ({args.rate:g}/s asked), "
                f"{len(owed):,} detractors (owed alerts), {args.partitions} partitions",
            ),
            ("during the outage, at its end", ""),
            (
                "  offsets committed",
                f"{end_of_outage.committed:>8,} of {end_of_outage.produced:,} produced "
                f"({end_of_outage.committed / max(end_of_outage.produced, 1):.0%})",
            ),
            ("  tasks published (opened)", f"{end_of_outage.opened:>8,} of {len(owed):,} detractors"),
            ("  answers in the latest snapshot", f"{end_of_outage.answers:>8,}"),
            ("  committed per 10 s row", ", ".join(f"{r.committed:,}" for r in during) or "–"),
            ("  Slack requests answered 503", f"{end_of_outage.refused:>8,}"),
            ("after Slack came back", ""),
            ("  every owed alert in Slack", seconds_or(reached["alerts"])),
            ("  every offset committed", seconds_or(reached["committed"])),
            ("  every task published", seconds_or(reached["tasks"])),
            ("  every answer in a snapshot", seconds_or(reached["snapshot"])),
            ("owed alerts in Slack", f"{len(owed_set & slack.first.keys()):>8,} of {len(owed):,}"),
            ("event ids in Slack more than once", f"{dupes:>8,}"),
            ("Slack messages accepted", f"{final.messages - watch.base[4]:>8,} ({kinds}; by metadata event_type)"),
            (
                "CPU, worker's threads",
                f"{worker_s:>8.1f} s, {worker_s / max(len(owed), 1) * 1e3:,.2f} ms per owed alert, "
                f"{worker_s / max(events, 1) * 1e6:,.0f} µs per event (from Slack down to "
                f"{'all done' if finished else 'the timeout'})",
            ),
            ("CPU, share of a core", f"{cpu_used} (the bench process: the worker, the bench's producer and probes)"),
        ]
    )
    if problems:
        raise BenchError("; ".join(problems))
    return 0


# -- scenario B: storm ---------------------------------------------------------------------------


def storm(args: argparse.Namespace) -> int:
    problems: list[str] = []
    with OutageSlackProcess() as slack, EmbeddedBroker() as broker:
        settings = bench_settings(broker, slack, storm_rules(), args.emit_every, channel_rate_limit_per_minute=args.rate_limit)
        quiet_logs(settings)
        ensure_topics(settings, [settings.feedback_topic], partitions=args.partitions)
        ensure_topics(settings, [settings.followup_topic, settings.metrics_topic, settings.dlq_topic], compacted=[settings.metrics_topic])
        produced = Produced(settings, linger_ms=20, batch_size=512 * 1024, compression_type="lz4")
        watch = Watch(settings, args.partitions, slack, produced)
        cpu, worker_cpu = CpuClock({"broker": broker.process.pid, "fake Slack": slack.process.pid}), WorkerCpu()
        say(
            f"▶ broker {broker.bootstrap_servers}; {args.partitions} partitions; every detractor to {STORM_CHANNEL}, channel rate "
            f"limit {settings.channel_rate_limit_per_minute or 'off'} a minute, MAX_IN_FLIGHT_ALERTS "
            f"{settings.max_in_flight_alerts}, commits every {settings.commit_interval_seconds:g}s; waiting for the worker to join"
        )
        try:
            watch.start()
            joined_s = watch.warm_up(warmup_event())
            say(f"  warm-up alert in Slack, committed, task published and counted after {joined_s:.1f}s")
            generator, owed, total = FeedbackGenerator(seed=args.seed), [], args.events + 1
            vip_sent: list[float] = []

            def produce() -> None:
                for n in range(args.events):
                    if n == args.events // 2:
                        vip = answer(generator, args.events, VIP_ID, 2, "Nobody answers our tickets any more")
                        vip["customer"] = vip["customer"] | {"segment": "enterprise"}
                        vip["attributes"] = {**vip["attributes"], "bench": "vip"}
                        vip_sent.append(time.time())
                        produced.send(vip)
                    event = answer(generator, n, f"storm-{n:07d}", n % 7, "Printer ink arrived late again")
                    owed.append(event["event_id"])
                    produced.send(event)
                produced.producer.flush()

            say(
                f"▶ burst of {args.events:,} detractors, the {VIP_CHANNEL} answer after {args.events // 2:,}; "
                f"not finished in {args.timeout:g}s ends the run"
            )
            header = f"  {'t (s)':>7}{'produced':>10}{'committed':>11}{'/s (10 s)':>11}{'tasks':>9}{'Slack msgs':>12}{'in Slack':>10}  vip"
            say(
                "  (since the warm-up: events produced (acked), offsets committed by the group and per second since the last row, "
                "followup.opened records, messages Slack accepted, event ids in them; vip: its alert is in Slack)"
            )
            say(header + "\n  " + "─" * (len(header) - 2))
            t0 = time.monotonic()
            cpu.reset()
            worker_cpu.reset()
            producer = threading.Thread(target=produce, name="producer")
            producer.start()
            produce_s: float | None = None
            last = Sample(0.0, 0, 0, 0, 0, slack)
            rates: list[float] = []  # committed per second, row to row, over the rows the stream went on for
            expected: set[str] = set()

            def row(sample: Sample) -> None:
                nonlocal last
                rate = (sample.committed - last.committed) / max(sample.at - last.at, 1e-9)
                if sample.committed < total:  # the stream went on for the whole row: a fair rate
                    rates.append(rate)
                vip = "yes" if VIP_ID in slack.first else "–"
                say(
                    f"  {sample.at:>7.1f}{sample.produced:>10,}{sample.committed:>11,}{rate:>11,.0f}{sample.opened:>9,}"
                    f"{sample.messages - watch.base[4]:>12,}{sample.in_slack - watch.base[5]:>10,}  {vip}"
                )
                last = sample

            done: dict[str, float | None] = dict.fromkeys(("committed", "in Slack", "tasks"))
            next_row, deadline = ROW_EVERY_S, t0 + args.timeout
            while time.monotonic() < deadline:
                if produce_s is None and not producer.is_alive():
                    produce_s = time.monotonic() - t0
                    produced.check()
                    expected = set(owed) | {VIP_ID}
                at = time.monotonic() - t0
                sample = watch.sample(at)
                if produce_s is not None:
                    for name, ok in (
                        ("committed", sample.committed >= total),
                        ("in Slack", expected <= slack.first.keys()),
                        ("tasks", sample.opened >= total),
                    ):
                        if done[name] is None and ok:
                            done[name] = at
                if at >= next_row:
                    row(sample)
                    next_row += ROW_EVERY_S
                if all(v is not None for v in done.values()):
                    break
                time.sleep(SAMPLE_EVERY_S)
            finished = all(v is not None for v in done.values())
            cpu_used, worker_s = cpu.used(), worker_cpu.seconds()
            if finished:
                time.sleep(SETTLE_S)  # a late duplicate
            final = watch.sample(time.monotonic() - t0)
            row(final)
        finally:
            watch.finish()
            produced.close()

    owed_set = set(owed)
    missing = sorted(owed_set - slack.first.keys())
    elapsed = done["committed"] or final.at
    committed = min(final.committed, total)
    vip_s = slack.first[VIP_ID] - vip_sent[0] if vip_sent and VIP_ID in slack.first else None
    in_slack = len(owed_set & slack.first.keys()) + (VIP_ID in slack.first)
    if not finished:
        problems.append(
            f"not finished in {args.timeout:g} s: "
            + ", ".join(
                f"{what} ({got:,} of {total:,})"
                for what, got, ok in (
                    ("committed", final.committed, done["committed"]),
                    ("in Slack", in_slack, done["in Slack"]),
                    ("tasks", final.opened, done["tasks"]),
                )
                if ok is None
            )
        )
    kinds = slack.kinds - watch.base_kinds  # without the warm-up's alert
    alerts, summaries = kinds.get("feedback_alert", 0), kinds.get("feedback_alert_digest", 0)
    others = sum(kinds.values()) - alerts - summaries
    table(
        [
            (
                "scenario",
                f"storm: {args.events:,} detractors to {STORM_CHANNEL} (rate limit {settings.channel_rate_limit_per_minute or 'off'}"
                f"/min) + 1 to {VIP_CHANNEL}, {args.partitions} partitions",
            ),
            ("burst produced in", seconds_or(produce_s, "not finished") + (f" ({total / produce_s:,.0f} events/s)" if produce_s else "")),
            ("stream: all committed after", seconds_or(done["committed"], f"not finished in {args.timeout:g} s")),
            (
                "stream rate (committed/s)",
                f"{committed / max(elapsed, 1e-9):>8,.0f} {'overall' if done['committed'] else 'so far'}"
                + (f"; per 10 s row: best {max(rates):,.0f}, median {sorted(rates)[len(rates) // 2]:,.0f}" if rates else ""),
            ),
            (f"{VIP_CHANNEL} answer: sent → in Slack", seconds_or(vip_s, "not in Slack")),
            ("every detractor in Slack after", seconds_or(done["in Slack"], "not reached")),
            ("every task published after", seconds_or(done["tasks"], "not reached")),
            (
                "detractors in Slack",
                f"{len(owed_set & slack.first.keys()):>8,} of {len(owed):,} "
                f"({'all accounted for' if not missing else f'{len(missing):,} missing'})",
            ),
            ("event ids in Slack more than once", f"{slack.duplicates():>8,}"),
            (
                "Slack messages",
                f"{slack.messages - watch.base[4]:>8,} ({alerts:,} alerts, the {VIP_CHANNEL} one included; "
                f"rate-limit summaries and digests {summaries:,}; other {others:,})",
            ),
            (
                "CPU, worker's threads",
                f"{worker_s:>8.1f} s, {worker_s / total * 1e3:,.2f} ms per detractor (from the burst's start "
                f"to {'all done' if finished else 'the timeout'})",
            ),
            ("CPU, share of a core", f"{cpu_used} (the bench process: the worker, the bench's producer and probes)"),
        ]
    )
    if problems:
        raise BenchError("; ".join(problems))
    return 0


def quiet_logs(settings: Settings) -> None:
    """WARNING and up, without what an outage is expected to log: the sink's line per retry, /readyz failing."""
    setup_logging("WARNING", settings.secrets())
    expected = ("Slack unavailable (", "Slack unreachable (")
    for handler in logging.getLogger().handlers:
        handler.addFilter(lambda record: not record.getMessage().startswith(expected))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=("outage", "storm"), required=True)
    parser.add_argument("--down", type=float, default=60.0, help="outage: seconds Slack is down (default 60)")
    parser.add_argument("--rate", type=float, default=200.0, help="outage: events produced per second while down (default 200)")
    parser.add_argument("--events", type=int, default=50_000, help="storm: detractors in the burst (default 50000)")
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=None,
        metavar="N",
        help="CHANNEL_RATE_LIMIT_PER_MINUTE for the worker (default: outage 0 = off; storm the worker's default, 20, or the environment's)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="seconds before the run ends as not finished: outage after Slack returns, storm after the burst starts (default 600)",
    )
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the feedback topic (default 4)")
    parser.add_argument("--emit-every", type=float, default=5.0, help="seconds between metric snapshots (default 5)")
    parser.add_argument("--seed", type=int, default=7, help="FeedbackGenerator seed (default 7)")
    args = parser.parse_args()
    if args.down <= 0 or args.rate <= 0 or args.events < 2 or args.partitions < 1 or args.timeout <= 0 or args.emit_every < 1:
        parser.error("--down, --rate, --timeout must be positive, --events at least 2, --partitions and --emit-every at least 1")
    return outage(args) if args.scenario == "outage" else storm(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        say(f"✖ {err}")
        sys.exit(1)
