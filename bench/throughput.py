"""Throughput of the feedback worker, against a bare Kafka consumer as the ceiling.

One run, on the embedded broker (Tansu), with nothing of your own needed:

1. create the feedback topic (--partitions) and the worker's output topics;
2. produce --events realistic answers from FeedbackGenerator (1 in 1000 malformed);
3. (a) drain the topic with a bare KafkaConsumer (assign + seek, count records, no
   deserialisation): what kafka-python alone fetches in one Python process, the ceiling;
4. (b) run the worker (worker.service.serve) with the shipped rules and templates, posting
   alerts over real HTTP to the fake Slack of tests/fake_slack/ (in a child process, as
   Slack is remote); time it from the first event it handles (start-up and group join
   excluded) until its committed offsets reach the end of every partition;
5. check the counts (events, tasks, alerts, DLQ) and print a summary.

Usage: make bench, or .venv/bin/python bench/throughput.py --events 20000 (see bench/README.md).
Exits 1 if the worker does not finish in time or the counts do not add up.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kafka import KafkaConsumer, TopicPartition  # noqa: E402

from tests.fake_slack import FakeSlack  # noqa: E402
from worker.alerting import SlackSink  # noqa: E402
from worker.broker import EmbeddedBroker, common_config, ensure_topics, make_producer  # noqa: E402
from worker.config import Settings, load_settings  # noqa: E402
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


def rss_mb(pid: int | str = "self", field: str = "VmHWM") -> float:
    """A process's resident set size: VmHWM is the peak so far, VmRSS the current one."""
    with open(f"/proc/{pid}/status") as status:
        return int(next(line for line in status if line.startswith(field + ":")).split()[1]) / 1024


class SlackProcess:
    """tests/fake_slack's FakeSlack in a child process: Slack is remote, and its HTTP server
    must not compete with the worker for this process's GIL. Asked over a pipe for its count."""

    token = "xoxb-bench-token"

    def __enter__(self) -> SlackProcess:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(target=_serve_fake_slack, args=(child, self.token), daemon=True)
        self.process.start()
        if not self.pipe.poll(30):
            self.process.kill()
            raise BenchError("the fake Slack process did not start within 30s")
        self.url = self.pipe.recv()
        return self

    @property
    def attempts(self) -> int:
        """chat.postMessage calls answered (all accepted: no failures are scripted)."""
        self.pipe.send("attempts")
        return self.pipe.recv()

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            self.pipe.send("stop")
            self.process.join(timeout=10)


def _serve_fake_slack(pipe: Any, token: str) -> None:
    with FakeSlack(token=token, record_requests=False) as slack:
        pipe.send(slack.url)
        while pipe.recv() != "stop":
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
    consumer = KafkaConsumer(**common_config(settings), enable_auto_commit=False, max_poll_records=500)
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


class TimedSink:
    """The worker's SlackSink, noting when the first alert is submitted: the first event handled."""

    def __init__(self, inner: SlackSink) -> None:
        self.inner, self.first = inner, None

    def submit(self, alert: Any, abandon: threading.Event) -> Any:
        self.first = self.first or time.monotonic()
        return self.inner.submit(alert, abandon)

    def close(self) -> None:
        self.inner.close()


def run_worker(settings: Settings, slack: SlackProcess, end: dict[int, int], deadline_s: float, cpu: CpuClock) -> dict[str, Any]:
    """(b) Run serve() in a thread until its group has committed every end offset, then stop it."""
    stop, result = threading.Event(), {}
    sink = TimedSink(SlackSink(settings.slack_bot_token, settings.slack_api_url, settings.slack_concurrency))

    def work() -> None:
        try:
            result["stats"] = serve(settings, stop, sink=sink)
        except BaseException as err:  # reported below instead of hanging the bench
            result["error"] = err
            stop.set()

    started = time.monotonic()
    thread = threading.Thread(target=work, name="worker")
    thread.start()
    probe = KafkaConsumer(**common_config(settings), group_id=settings.consumer_group, enable_auto_commit=False)
    tps = {p: TopicPartition(settings.feedback_topic, p) for p in end}
    total, progress, finished, rss_first = sum(end.values()), None, None, rss_mb(field="VmRSS")
    try:
        while not stop.is_set() and time.monotonic() < started + deadline_s:
            committed = {p: probe.committed(tp) or 0 for p, tp in tps.items()}
            if all(committed[p] >= n for p, n in end.items()):
                finished, cpu_used, rss_end = time.monotonic(), cpu.used(), rss_mb(field="VmRSS")
                break
            if sink.first is not None:
                if progress is None:  # the first event: the clocks start here
                    progress, rss_first = Progress("committed", total, start=sink.first), rss_mb(field="VmRSS")
                    cpu.reset()
                progress.tick(sum(min(committed[p], n) for p, n in end.items()), f", {slack.attempts:,} alerts posted")
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=settings.shutdown_timeout_seconds + 30)
        probe.close()
    if "error" in result:
        raise BenchError(f"the worker failed: {result['error']!r}")
    if thread.is_alive():
        raise BenchError("the worker did not stop within 30s of the stop event")
    if finished is None or sink.first is None:
        raise BenchError(f"the worker did not commit all {total:,} events within {deadline_s:.0f}s")
    return {"stats": result["stats"], "join_s": sink.first - started, "elapsed_s": finished - sink.first,
            "cpu": cpu_used, "rss": (rss_first, rss_end, rss_mb())}


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
    expect = {
        "events consumed by the worker": (stats.consumed, events),
        "invalid events counted by the worker": (stats.invalid, malformed),
        "invalid events in the DLQ": (sum(d["type"] == "feedback.invalid" for d in dead), malformed),
        "tasks in the follow-up topic": (tasks, stats.tasks),
        "alerts answered by the fake Slack": (alerts, stats.alerts_sent),
        # one alert per task, plus metric-rule alerts where the worker has them
        "alerts sent + dead-lettered": (stats.alerts_sent + stats.alerts_dead, stats.tasks + getattr(stats, "metric_alerts", 0)),
    }
    return [f"{what}: {got:,}, expected {want:,}" for what, (got, want) in expect.items() if got != want]


def event_rules_only(rules_dir: Path) -> Path:
    """With --no-metrics: the shipped rules minus metric rules (the worker refuses those without metrics)."""
    import tempfile

    import yaml

    out = Path(tempfile.mkdtemp(prefix="bench-rules-"))
    for path in sorted(rules_dir.glob("*.yaml")):
        document = yaml.safe_load(path.read_text()) or {}
        document["rules"] = [r for r in document.get("rules", []) if "metric" not in (r.get("when") or {})]
        (out / path.name).write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events to produce (default 200000)")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the feedback topic (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="FeedbackGenerator seed (default 7)")
    parser.add_argument("--compression", default="lz4", choices=["lz4", "gzip", "snappy", "zstd", "none"])
    parser.add_argument("--no-metrics", dest="metrics", action="store_false", help="run the worker with metrics off")
    args = parser.parse_args()
    if args.events < 1 or args.partitions < 1:
        parser.error("--events and --partitions must be at least 1")
    deadline_s = 60 + args.events / 1000  # generous: the worker must beat 1,000 events/s

    with SlackProcess() as slack, EmbeddedBroker() as broker:
        children = {"broker": broker.process.pid, "fake Slack": slack.process.pid}
        settings = load_settings(  # the environment may tune the worker (e.g. SLACK_CONCURRENCY); these win
            None,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            kafka_session_timeout_ms=6000,
            kafka_heartbeat_interval_ms=1000,
            rules_path=ROOT / "rules" if args.metrics else event_rules_only(ROOT / "rules"),
            templates_path=ROOT / "templates",
            slack_bot_token=slack.token,
            slack_api_url=slack.url,
            metrics=MetricsConfig(enabled=args.metrics),
            channel_rate_limit_per_minute=0,  # measure every alert's full cost, not the summaries that would replace them
        )
        setup_logging("WARNING", settings.secrets())
        logging.getLogger("worker").addFilter(lambda r: not r.getMessage().startswith("invalid event"))  # expected
        ensure_topics(settings, [settings.feedback_topic], partitions=args.partitions)
        ensure_topics(settings, [settings.followup_topic, settings.metrics_topic, settings.dlq_topic])
        say(f"▶ broker {broker.bootstrap_servers}; {args.events:,} events, {args.partitions} partitions, {args.compression}; "
            f"metrics {'on' if args.metrics else 'off'}")

        say("▶ producing")
        cpu = CpuClock(children)
        end, malformed, produce_s = produce(settings, args)
        say(f"  {args.events / produce_s:,.0f} events/s ({produce_s:.1f}s, generating the JSON included); {cpu.used()}")

        say("▶ (a) bare consumer: assign, seek to beginning, count")
        cpu = CpuClock(children)
        count, size, bare_s = bare_consume(settings, end, deadline_s)
        say(f"  {count / bare_s:,.0f} events/s ({bare_s:.1f}s, {size / bare_s / 1e6:.1f} MB/s of values); {cpu.used()}")
        if count != args.events:
            raise BenchError(f"the bare consumer read {count:,} records, not {args.events:,}")

        say(f"▶ (b) worker: shipped rules, alerts to the fake Slack, commits every {settings.commit_interval_seconds:g}s")
        cpu = CpuClock(children)
        run = run_worker(settings, slack, end, deadline_s, cpu)
        say(f"  {args.events / run['elapsed_s']:,.0f} events/s ({run['elapsed_s']:.1f}s, after {run['join_s']:.1f}s of "
            f"start-up and group join); {run['cpu']}")

        say("▶ reading back the follow-up and dead-letter topics")
        tasks = count_records(settings, settings.followup_topic)
        dead = read_all(settings, settings.dlq_topic)
        stats, alerts, rss_broker = run["stats"], slack.attempts, rss_mb(broker.process.pid)
        problems = check(stats, args.events, malformed, alerts, tasks, dead)

    bare_rate, worker_rate = count / bare_s, args.events / run["elapsed_s"]
    rss_first, rss_end, rss_peak = run["rss"]
    rows = [
        ("events", f"{args.events:,} ({malformed} malformed), {args.partitions} partitions, {args.compression}"),
        ("produce", f"{args.events / produce_s:>9,.0f} events/s"),
        ("(a) bare consumer", f"{bare_rate:>9,.0f} events/s"),
        ("(b) worker", f"{worker_rate:>9,.0f} events/s"),
        ("(b) / (a)", f"{worker_rate / bare_rate:>9.3f}"),
        ("start-up + group join", f"{run['join_s']:>9.1f} s (excluded from (b))"),
        ("alerts posted", f"{alerts:>9,}"),
        ("tasks published", f"{tasks:>9,}"),
        ("DLQ records", f"{len(dead):>9,} ({stats.invalid:,} invalid events, {stats.alerts_dead:,} undeliverable alerts)"),
        ("peak RSS, bench process", f"{rss_peak:>9,.0f} MB (during (b): {rss_first:,.0f} MB at the first event, {rss_end:,.0f} MB at the end)"),
        ("peak RSS, broker", f"{rss_broker:>9,.0f} MB"),
    ]
    say("\n" + "═" * 72 + "\n" + "\n".join(f"{name:<26}{value}" for name, value in rows) + "\n" + "═" * 72)
    if problems:
        raise BenchError("the counts do not add up:\n  " + "\n  ".join(problems))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as err:
        say(f"✖ {err}")
        sys.exit(1)
