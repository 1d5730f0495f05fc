"""Throughput of the feedback worker, against a bare Kafka consumer as the ceiling; and alert latency.

Throughput (the default), on the embedded broker (Tansu), with nothing of your own needed:

1. create the feedback topic (--partitions) and the worker's output topics;
2. produce --events realistic answers from FeedbackGenerator (1 in 1000 malformed);
3. (a) drain the topic with a bare KafkaConsumer (assign + seek, count records, no
   deserialisation): what kafka-python alone fetches in one Python process, the ceiling;
4. (b) run the worker (worker.service.serve) with the --mix's rules (bench/mixes.py) and the
   shipped templates, posting alerts over real HTTP to the fake Slack of tests/fake_slack/
   (in a child process, as Slack is remote); time it from the first event it handles (start-up
   and group join excluded) until its committed offsets reach the end of every partition;
5. check the counts (events, tasks, alerts, DLQ) and print a summary, with the bench process's
   CPU time in (b) per event and per alert.

Latency (--latency RATE): run the worker with the shipped rules, produce RATE events/s for
--duration seconds, one in five alerting, and report p50/p99 from each event's send to the
moment the fake Slack receives its alert.

Usage: make bench, or .venv/bin/python bench/throughput.py --events 20000 --mix quiet (see bench/README.md).
Exits 1 if the worker does not finish in time or the counts do not add up.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from bench.mixes import MIXES, rules_for  # noqa: E402
from tests.fake_slack import FakeSlack  # noqa: E402
from worker import service  # noqa: E402
from worker.broker import EmbeddedBroker, common_config, ensure_topics, make_consumer, make_producer  # noqa: E402
from worker.config import Settings, load_settings  # noqa: E402
from worker.delivery import SlackSink  # noqa: E402
from worker.demo import FeedbackGenerator, read_all  # noqa: E402
from worker.logs import setup_logging  # noqa: E402
from worker.metrics import MetricsConfig  # noqa: E402
from worker.service import serve  # noqa: E402

MALFORMED_EVERY = 1000
PROGRESS_EVERY_S = 2.0


class BenchError(Exception):
    """The run is not a valid measurement; the message says why."""


def say(message: str) -> None:
    print(message, flush=True)


class Progress:
    """A progress line every PROGRESS_EVERY_S seconds during a long phase."""

    def __init__(self, label: str, total: int, start: float | None = None) -> None:
        self.label, self.total = label, total
        self.start = self.last = start or time.monotonic()

    def tick(self, done: int, extra: str = "") -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            say(f"    {self.label} {done:>9,} / {self.total:,}  ({done / (now - self.start):,.0f}/s){extra}")


class CpuClock:
    """CPU used since reset(), as a share of one core: this process (all threads) and children."""

    def __init__(self, children: dict[str, int]) -> None:
        self.children = children
        self.reset()

    def reset(self) -> None:
        self.wall, self.start = time.monotonic(), self._now()

    def _now(self) -> dict[str, float]:
        now = {"bench process": time.process_time()}
        for name, pid in self.children.items():
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            now[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return now

    def used(self) -> str:
        now, wall_s = self._now(), time.monotonic() - self.wall
        return "CPU: " + ", ".join(f"{name} {(now[name] - self.start[name]) / wall_s:.0%}" for name in now)

    def seconds(self, name: str = "bench process") -> float:
        """CPU seconds `name` used since reset()."""
        return self._now()[name] - self.start[name]


def rss_mb(pid: int | str = "self", field: str = "VmHWM") -> float:
    """A process's resident set size: VmHWM is the peak so far, VmRSS the current one."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1]) / 1024


class SlackProcess:
    """tests/fake_slack's FakeSlack in a child process: Slack is remote, and its HTTP server
    must not compete with the worker for this process's GIL. Asked over a pipe for its count,
    and for when each event's alert arrived (`arrivals`)."""

    token = "xoxb-bench-token"

    def __enter__(self) -> SlackProcess:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=self.child(), args=(child, self.token), daemon=True)
        self.process.start()
        if not self.pipe.poll(30):
            self.process.kill()
            raise BenchError("the fake Slack process did not start within 30s")
        self.url = self.pipe.recv()
        return self

    def child(self) -> Any:
        """What the child process runs: the fake Slack, answering over the pipe."""
        return _serve_fake_slack

    @property
    def attempts(self) -> int:
        """chat.postMessage calls answered (all accepted: no failures are scripted)."""
        self.pipe.send("attempts")
        return self.pipe.recv()

    def arrivals(self) -> dict[str, float]:
        """Event id -> time.time() when the first request carrying its alert arrived."""
        self.pipe.send("arrivals")
        return self.pipe.recv()

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            self.pipe.send("stop")
            self.process.join(timeout=10)


class ArrivalSlack(FakeSlack):
    """FakeSlack noting when each event's alert arrives: the end of the latency measurement."""

    def __init__(self, token: str) -> None:
        super().__init__(token=token, record_requests=False)
        self.arrived: dict[str, float] = {}

    def _answer(self, path: str, headers: Any, body: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
        at = time.time()
        try:
            params = json.loads(body) if headers.get("Content-Type", "").startswith("application/json") else {}
            metadata = params.get("metadata") or {}
            metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
            payload = metadata.get("event_payload") or {}
            ids = payload.get("event_ids") or [payload.get("event_id")]
        except ValueError:
            ids = []
        with self._lock:
            for event_id in ids:
                if event_id:
                    self.arrived.setdefault(event_id, at)
        return super()._answer(path, headers, body)


def _serve_fake_slack(pipe: Any, token: str) -> None:
    with ArrivalSlack(token) as slack:
        pipe.send(slack.url)
        while (command := pipe.recv()) != "stop":
            if command == "arrivals":
                with slack._lock:
                    pipe.send(dict(slack.arrived))
            else:
                pipe.send(slack.attempts)


def produce(settings: Settings, args: argparse.Namespace) -> tuple[dict[int, int], int, float]:
    """Send the events; return {partition: end offset} from the acks, the malformed count, seconds."""
    compression = None if args.compression == "none" else args.compression
    producer = make_producer(settings, linger_ms=20, batch_size=512 * 1024, compression_type=compression)
    end: dict[int, int] = {}
    errors: list[Exception] = []
    lock = threading.Lock()

    def acked(meta: Any) -> None:  # RecordMetadata: Tansu's end_offsets() cannot be trusted
        with lock:
            end[meta.partition] = max(end.get(meta.partition, 0), meta.offset + 1)

    progress, malformed, start = Progress("produced", args.events), 0, time.perf_counter()
    for sent, (key, value) in enumerate(FeedbackGenerator(seed=args.seed).stream(args.events, MALFORMED_EVERY), 1):
        producer.send(settings.feedback_topic, key=key, value=value).add_callback(acked).add_errback(errors.append)
        malformed += key.startswith(b"bad-")
        progress.tick(sent)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    if errors:
        raise BenchError(f"{len(errors)} records were not acknowledged, the first: {errors[0]!r}")
    if sum(end.values()) != args.events:
        raise BenchError(f"the acked offsets add up to {sum(end.values()):,}, not {args.events:,}")
    return end, malformed, elapsed


def bare_consume(settings: Settings, end: dict[int, int], deadline_s: float) -> tuple[int, int, float]:
    """(a) Count every record, touching only its length: records, bytes, seconds from the first fetch."""
    consumer = KafkaConsumer(
        **common_config(settings),
        enable_auto_commit=False,
        max_poll_records=500,  # as the worker's
        fetch_max_wait_ms=getattr(settings, "kafka_fetch_max_wait_ms", 500),
    )
    partitions = [TopicPartition(settings.feedback_topic, p) for p in sorted(end)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    position, count, size, first = dict.fromkeys(end, 0), 0, 0, None
    progress, deadline = Progress("consumed", sum(end.values())), time.monotonic() + deadline_s
    try:
        while any(position[p] < n for p, n in end.items()):
            if time.monotonic() > deadline:
                raise BenchError(f"the bare consumer read only {count:,} records in {deadline_s:.0f}s")
            for tp, records in consumer.poll(timeout_ms=100).items():
                first = first or time.perf_counter()
                count += len(records)
                size += sum(len(r.value) for r in records)
                position[tp.partition] = records[-1].offset + 1
            progress.tick(count)
        return count, size, time.perf_counter() - (first or time.perf_counter())
    finally:
        consumer.close()


class Handled:
    """Hooks on the worker's consumer.poll and its Slack sink, to time the work and nothing else.

    The clock starts when the first records arrive (not at the first alert: a quiet mix has
    none) and stops when every record up to `end` has been handled (the next poll after the
    batch holding the last one): the throughput. Alerts still in flight then, and rate-limit
    summaries still gathering (they wait RATE_SUMMARY_WAIT_S by design), are answered later:
    that tail is reported apart, and its CPU is counted. Commits come last, within
    COMMIT_INTERVAL_SECONDS: waited for, not timed."""

    def __init__(self, cpu: CpuClock, end: dict[int, int], sink: SlackSink, topic: str) -> None:
        self.cpu, self.end, self.inner, self.topic = cpu, end, sink, topic
        self.other = (0.0, 0.0)  # (monotonic, process CPU) when a record of another topic (a task action) was last polled
        self.position = dict.fromkeys(end, 0)
        self.first: float | None = None
        self.last: float | None = None
        self.answered = (0.0, 0.0)  # (monotonic, process CPU) when Slack last answered
        self.cpu_last = 0.0  # process CPU when the last record was handled
        self._all_fetched = False

    def submit(self, alert: Any, abandon: threading.Event, hold: Any = None) -> Any:
        future = self.inner.submit(alert, abandon)
        future.add_done_callback(self._answered)
        return future

    def _answered(self, _: Any) -> None:
        self.answered = (time.monotonic(), time.process_time())

    def close(self) -> None:
        self.inner.close()

    def timings(self) -> tuple[float, float, float]:
        """Seconds to handle every record; seconds more until Slack answered the last alert; the bench
        process's CPU seconds from the first record to whichever came last."""
        assert self.first is not None and self.last is not None
        # The keeper applies the task actions the events asked for: the worker's work too, though it may end later.
        last = max(self.last, self.other[0])
        cpu_end = max(self.cpu_last, self.answered[1], self.other[1])
        return last - self.first, max(0.0, self.answered[0] - last), cpu_end - self.cpu.start["bench process"]

    def keeper_idle(self, seconds: float = 2.0) -> bool:
        """No task action polled for `seconds`: the keeper has applied what the events asked for."""
        return time.monotonic() - max(self.other[0], self.last or 0.0) > seconds

    def consumer(self, settings: Settings) -> Any:
        consumer = make_consumer(settings)
        poll = consumer.poll

        def timed(*args: Any, **kwargs: Any) -> Any:
            if self._all_fetched and self.last is None:
                self.last, self.cpu_last = time.monotonic(), time.process_time()
            batch = poll(*args, **kwargs)
            if batch:
                if self.first is None:
                    self.first = time.monotonic()
                    self.cpu.reset()
                for tp, records in batch.items():
                    if tp.topic == self.topic:
                        self.position[tp.partition] = max(self.position.get(tp.partition, 0), records[-1].offset + 1)
                    else:
                        self.other = (time.monotonic(), time.process_time())
                self._all_fetched = all(self.position[p] >= n for p, n in self.end.items())
            return batch

        consumer.poll = timed
        return consumer


def run_worker(settings: Settings, slack: SlackProcess, end: dict[int, int], deadline_s: float, cpu: CpuClock) -> dict[str, Any]:
    """(b) Run serve() in a thread until its group has committed every end offset, then stop it."""
    stop, result = threading.Event(), {}
    handled = Handled(
        cpu, end, SlackSink(settings.slack_bot_token, settings.slack_api_url, settings.slack_concurrency), settings.feedback_topic
    )

    def work() -> None:
        try:
            result["stats"] = serve(settings, stop, sink=handled)
        except BaseException as err:  # reported below instead of hanging the bench
            result["error"] = err
            stop.set()

    started = time.monotonic()
    service.make_consumer = handled.consumer  # the bench's hook: nothing else of serve() changes
    thread = threading.Thread(target=work, name="worker")
    thread.start()
    probe = KafkaConsumer(**common_config(settings), group_id=settings.consumer_group, enable_auto_commit=False)
    tps = {p: TopicPartition(settings.feedback_topic, p) for p in end}
    total, progress, finished, rss_first = sum(end.values()), None, None, rss_mb(field="VmRSS")
    try:
        while not stop.is_set() and time.monotonic() < started + deadline_s:
            committed = {p: probe.committed(tp) or 0 for p, tp in tps.items()}
            if all(committed[p] >= n for p, n in end.items()) and handled.last is not None and handled.keeper_idle():
                finished, cpu_used, rss_end = time.monotonic(), cpu.used(), rss_mb(field="VmRSS")
                break
            if handled.first is not None:
                if progress is None:  # the first event: the clocks started there
                    progress, rss_first = Progress("committed", total, start=handled.first), rss_mb(field="VmRSS")
                progress.tick(sum(min(committed[p], n) for p, n in end.items()), f", {slack.attempts:,} alerts posted")
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=settings.shutdown_timeout_seconds + 30)
        probe.close()
        service.make_consumer = make_consumer
    if "error" in result:
        raise BenchError(f"the worker failed: {result['error']!r}")
    if thread.is_alive():
        raise BenchError("the worker did not stop within 30s of the stop event")
    if finished is None or handled.first is None or handled.last is None:
        raise BenchError(f"the worker did not commit all {total:,} events within {deadline_s:.0f}s")
    elapsed_s, tail_s, cpu_s = handled.timings()
    return {
        "stats": result["stats"],
        "join_s": handled.first - started,
        "elapsed_s": elapsed_s,
        "tail_s": tail_s,
        "committed_s": finished - handled.first,
        "cpu": cpu_used,
        "cpu_s": cpu_s,
        "rss": (rss_first, rss_end, rss_mb()),
    }


def count_records(settings: Settings, topic: str, idle_ms: int = 1500) -> int:
    """Records on `topic`, read until idle (Tansu's end_offsets() cannot be trusted)."""
    consumer = KafkaConsumer(**common_config(settings), enable_auto_commit=False, consumer_timeout_ms=idle_ms)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    try:
        return sum(1 for _ in consumer)
    finally:
        consumer.close()


def check(stats: Any, events: int, malformed: int, alerts: int, tasks: int, dead: list[dict[str, Any]]) -> list[str]:
    """Every way the counts could disagree; empty when the run is consistent."""
    rate_limited, digests = getattr(stats, "rate_limited", 0), getattr(stats, "digests", 0)
    # A match that joins a task (a throttled repeat, or another unhappy answer of a customer with an unresolved task)
    # is a followup.updated record and a thread reply instead of a task and an alert.
    replies = getattr(stats, "throttled", 0) + getattr(stats, "joined", 0)
    expect = {
        "events consumed by the worker": (stats.consumed, events),
        "invalid events counted by the worker": (stats.invalid, malformed),
        "invalid events in the DLQ": (sum(d["type"] == "feedback.invalid" for d in dead), malformed),
        "records in the follow-up topic (opened + updated)": (tasks, stats.tasks + replies),
        "alerts answered by the fake Slack": (alerts, stats.alerts_sent),
        # one alert per task (or a place in a rate-limit summary), a reply per joined match, plus metric-rule alerts
        "alerts sent + dead-lettered": (
            stats.alerts_sent + stats.alerts_dead,
            stats.tasks - rate_limited + digests + replies + getattr(stats, "metric_alerts", 0),
        ),
    }
    return [f"{what}: {got:,}, expected {want:,}" for what, (got, want) in expect.items() if got != want]


def base_settings(broker: EmbeddedBroker, slack: SlackProcess, mix: str, metrics: bool, themes: bool = True, **overrides: Any) -> Settings:
    """The worker's settings for a run: the environment may tune the worker (e.g. SLACK_CONCURRENCY,
    KAFKA_FETCH_MAX_WAIT_MS); these win."""
    return load_settings(
        None,
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
        rules_path=rules_for(mix, ROOT / "rules", metrics, themes),
        templates_path=ROOT / "templates",
        slack_bot_token=slack.token,
        slack_api_url=slack.url,
        metrics=MetricsConfig(enabled=metrics),
        **overrides,
    )


def throughput(args: argparse.Namespace) -> int:
    deadline_s = 60 + args.events / 1000  # generous: the worker must beat 1,000 events/s
    with SlackProcess() as slack, EmbeddedBroker() as broker:
        children = {"broker": broker.process.pid, "fake Slack": slack.process.pid}
        # shipped and quiet: every alert's full cost, not the summaries that would replace them; burst: the
        # default limit (or CHANNEL_RATE_LIMIT_PER_MINUTE), so the rate-limit summaries are what is measured.
        overrides: dict[str, Any] = (
            {} if args.mix == "burst" else {"channel_rate_limit_per_minute": 0, "max_owed_per_channel": max(args.events, 500)}
        )
        if args.mix == "burst":  # a summary holds its events' offsets for its wait: let them all be in flight
            overrides["max_in_flight_alerts"] = max(args.events, 1000)
        settings = base_settings(broker, slack, args.mix, args.metrics, args.themes, **overrides)
        setup_logging("WARNING", settings.secrets())
        logging.getLogger("worker").addFilter(lambda r: not r.getMessage().startswith("invalid event"))  # expected
        ensure_topics(settings, [settings.feedback_topic], partitions=args.partitions)
        ensure_topics(settings, [settings.followup_topic, settings.metrics_topic, settings.dlq_topic], compacted=[settings.metrics_topic])
        say(
            f"▶ broker {broker.bootstrap_servers}; {args.events:,} events, {args.partitions} partitions, {args.compression}; "
            f"mix {args.mix}; metrics {'on' if args.metrics else 'off'}; themes {'on' if args.themes else 'off'}"
        )

        say("▶ producing")
        cpu = CpuClock(children)
        end, malformed, produce_s = produce(settings, args)
        say(f"  {args.events / produce_s:,.0f} events/s ({produce_s:.1f}s, generating the JSON included); {cpu.used()}")

        say("▶ (a) bare consumer: assign, seek to beginning, count")
        cpu = CpuClock(children)
        count, size, bare_s = bare_consume(settings, end, deadline_s)
        bare_cpu_s = cpu.seconds()
        say(f"  {count / bare_s:,.0f} events/s ({bare_s:.1f}s, {size / bare_s / 1e6:.1f} MB/s of values); {cpu.used()}")
        if count != args.events:
            raise BenchError(f"the bare consumer read {count:,} records, not {args.events:,}")

        say(
            f"▶ (b) worker: {args.mix} rules, alerts to the fake Slack (rate limit "
            f"{settings.channel_rate_limit_per_minute or 'off'}), commits every {settings.commit_interval_seconds:g}s"
        )
        cpu = CpuClock(children)
        run = run_worker(settings, slack, end, deadline_s, cpu)
        say(
            f"  {args.events / run['elapsed_s']:,.0f} events/s ({run['elapsed_s']:.1f}s to handle them, the last alert answered "
            f"{run['tail_s']:.1f}s later, all committed after {run['committed_s']:.1f}s; {run['join_s']:.1f}s of start-up and "
            f"group join before); {run['cpu']}"
        )

        say("▶ reading back the follow-up and dead-letter topics")
        tasks = count_records(settings, settings.followup_topic)
        dead = read_all(settings, settings.dlq_topic)
        stats, alerts, rss_broker = run["stats"], slack.attempts, rss_mb(broker.process.pid)
        problems = check(stats, args.events, malformed, alerts, tasks, dead)

    bare_rate, worker_rate = count / bare_s, args.events / run["elapsed_s"]
    rss_first, rss_end, rss_peak = run["rss"]
    matched = stats.matched
    per_alert = (
        f"{run['cpu_s'] / matched * 1e6:>9,.0f} µs per matched event (task + alert, thread reply or summary place)"
        if matched
        else "        – (no alerts)"
    )
    rows = [
        ("events", f"{args.events:,} ({malformed} malformed), {args.partitions} partitions, {args.compression}, mix {args.mix}"),
        ("produce", f"{args.events / produce_s:>9,.0f} events/s"),
        ("(a) bare consumer", f"{bare_rate:>9,.0f} events/s  ({bare_cpu_s / count * 1e6:,.1f} µs CPU per event)"),
        ("(b) worker", f"{worker_rate:>9,.0f} events/s"),
        ("(b) / (a)", f"{worker_rate / bare_rate:>9.3f}"),
        ("(b) CPU, bench process", f"{run['cpu_s'] / args.events * 1e6:>9,.1f} µs per event"),
        ("", per_alert),
        ("start-up + group join", f"{run['join_s']:>9.1f} s (excluded from (b))"),
        ("last alert answered", f"{run['tail_s']:>9.1f} s after the last event was handled (excluded from (b))"),
        ("matched events", f"{matched:>9,} ({getattr(stats, 'rate_limited', 0):,} of them in rate-limit summaries)"),
        ("Slack messages posted", f"{alerts:>9,} ({getattr(stats, 'digests', 0):,} summaries)"),
        (
            "tasks opened",
            f"{stats.tasks:>9,} ({getattr(stats, 'throttled', 0) + getattr(stats, 'joined', 0):,} matches joined a task "
            f"as a thread reply; {tasks:,} follow-up records)",
        ),
        ("DLQ records", f"{len(dead):>9,} ({stats.invalid:,} invalid events, {stats.alerts_dead:,} undeliverable alerts)"),
        (
            "peak RSS, bench process",
            f"{rss_peak:>9,.0f} MB (during (b): {rss_first:,.0f} MB at the first event, {rss_end:,.0f} MB at the end)",
        ),
        ("peak RSS, broker", f"{rss_broker:>9,.0f} MB"),
    ]
    say("\n" + "═" * 72 + "\n" + "\n".join(f"{name:<26}{value}" for name, value in rows) + "\n" + "═" * 72)
    if problems:
        raise BenchError("the counts do not add up:\n  " + "\n  ".join(problems))
    return 0


# -- latency -------------------------------------------------------------------------------

ALERT_EVERY = 5  # one event in five alerts (an NPS detractor); the others are promoters that match no rule


def latency_event(generator: FeedbackGenerator, n: int) -> dict[str, Any]:
    """Event n of the steady stream: a detractor every ALERT_EVERY-th, otherwise a quiet promoter."""
    event = generator.event(n) | {"event_id": f"lat-{n:07d}", "occurred_at": datetime.now(UTC).isoformat(), "survey": "nps"}
    if n % ALERT_EVERY == 0:
        return event | {"score": 3, "comment": "Printer ink arrived late again"}
    event = event | {"score": 10}
    event.pop("comment", None)  # a promoter's comment could still name a churn word
    return event


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def latency(args: argparse.Namespace) -> int:
    """Produce --latency events/s for --duration s; p50/p99 from each alerting event's send to its arrival at Slack."""
    rate, total = args.latency, int(args.latency * args.duration)
    expected = [f"lat-{n:07d}" for n in range(total) if n % ALERT_EVERY == 0]
    with SlackProcess() as slack, EmbeddedBroker() as broker:
        # No rate limit: every alert goes out at once (a summary would wait by design).
        settings = base_settings(
            broker, slack, "shipped", args.metrics, channel_rate_limit_per_minute=0, max_owed_per_channel=100_000
        )  # every alert posted alone: its latency, not a summary's
        setup_logging("WARNING", settings.secrets())
        ensure_topics(settings, [settings.feedback_topic], partitions=args.partitions)
        ensure_topics(settings, [settings.followup_topic, settings.metrics_topic, settings.dlq_topic], compacted=[settings.metrics_topic])
        stop, result = threading.Event(), {}

        def work() -> None:
            try:
                result["stats"] = serve(settings, stop)
            except BaseException as err:
                result["error"] = err
                stop.set()

        thread = threading.Thread(target=work, name="worker")
        thread.start()
        producer = make_producer(settings, linger_ms=0)  # each event leaves at once: the worker's latency, not the producer's
        generator = FeedbackGenerator(seed=args.seed)
        sent: dict[str, float] = {}
        try:
            say(f"▶ broker {broker.bootstrap_servers}; {args.partitions} partitions; waiting for the worker to join")
            warmup = latency_event(generator, 0) | {"event_id": "lat-warmup"}
            deadline = time.monotonic() + 60
            producer.send(settings.feedback_topic, key=b"warmup", value=json.dumps(warmup).encode())
            while "lat-warmup" not in slack.arrivals():
                if stop.is_set() or time.monotonic() > deadline:
                    raise BenchError(f"the worker did not alert on a first event within 60s: {result.get('error')!r}")
                time.sleep(0.2)
            fetch_wait = getattr(settings, "kafka_fetch_max_wait_ms", None)  # None: a worker without the setting
            say(
                f"▶ producing {rate:g} events/s for {args.duration:g}s ({total:,} events, 1 in {ALERT_EVERY} alerting); "
                f"fetch wait {'500 (kafka-python default)' if fetch_wait is None else fetch_wait} ms"
            )
            start = time.monotonic()
            for n in range(total):
                pause = start + n / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # pacing the producer, not synchronisation
                event = latency_event(generator, n)
                value = json.dumps(event, ensure_ascii=False).encode()
                sent[event["event_id"]] = time.time()
                producer.send(settings.feedback_topic, key=event["customer"]["id"].encode(), value=value)
            producer.flush()
            achieved = total / (time.monotonic() - start)
            deadline = time.monotonic() + 30
            while len(arrived := slack.arrivals()) < len(expected) + 1 and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            producer.close()
            stop.set()
            thread.join(timeout=settings.shutdown_timeout_seconds + 30)
        if "error" in result:
            raise BenchError(f"the worker failed: {result['error']!r}")
    missing = [event_id for event_id in expected if event_id not in arrived]
    if missing:
        raise BenchError(f"{len(missing):,} of {len(expected):,} alerts did not arrive within 30s of the last event")
    delays = [(arrived[event_id] - sent[event_id]) * 1000 for event_id in expected]
    rows = [
        ("events", f"{total:,} at {achieved:,.0f}/s ({rate:g}/s asked), {args.partitions} partitions, {len(expected):,} alerting"),
        ("send → Slack, p50", f"{percentile(delays, 0.50):>9,.1f} ms"),
        ("send → Slack, p99", f"{percentile(delays, 0.99):>9,.1f} ms"),
        ("send → Slack, max", f"{max(delays):>9,.1f} ms"),
    ]
    say("\n" + "═" * 72 + "\n" + "\n".join(f"{name:<26}{value}" for name, value in rows) + "\n" + "═" * 72)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to produce (default 200000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the feedback topic (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="FeedbackGenerator seed (default 7)")
    parser.add_argument("--compression", default="lz4", choices=["lz4", "gzip", "snappy", "zstd", "none"])
    parser.add_argument("--no-metrics", dest="metrics", action="store_false", help="run the worker with metrics off")
    parser.add_argument("--no-themes", dest="themes", action="store_false", help="without the shipped themes (nor the rule on them)")
    parser.add_argument(
        "--mix",
        choices=MIXES,
        default="shipped",
        help="shipped: the shipped rules (default); quiet: no event matches; burst: every event matches",
    )
    parser.add_argument("--latency", type=float, metavar="RATE", help="measure alert latency at RATE events/s instead")
    parser.add_argument("--duration", type=float, default=20.0, help="with --latency: seconds of steady production (default 20)")
    args = parser.parse_args()
    if args.events < 1 or args.partitions < 1:
        parser.error("--events and --partitions must be at least 1")
    if args.latency is not None and (args.latency <= 0 or args.duration <= 0):
        parser.error("--latency and --duration must be positive")
    return latency(args) if args.latency is not None else throughput(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        say(f"✖ {err}")
        sys.exit(1)
