"""`feedback-worker demo`: the whole flow on an embedded broker, no Kafka or Slack of your own.

Starts Tansu, creates the topics, runs the worker with the shipped rules and templates,
produces realistic feedback (with a few malformed messages), shows the alerts as they
happen, waits until every event is processed and committed, then reads the follow-up and
dead-letter topics back and prints a summary.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from ..broker import EmbeddedBroker, ensure_topics, make_producer
from ..config import load_settings
from ..logs import setup_logging
from ..metrics import MetricsConfig, MetricSnapshot, iso, themes_table
from ..rules import load_rules
from ..service import serve
from ..stream import Stats
from .diagnose import answer_again, resolve_backlog
from .samples import FeedbackGenerator
from .surveytool import answer_surveys, wait_for_outcomes
from .teammate import ACK_WITHIN_S, POOL, RESOLUTIONS, rules_with_short_sla, status_line, wait_for_escalation, work_tasks
from .wave import provoke, short_window

PARTITIONS = 3


def run_demo(events: int = 300, seed: int = 7, timeout_s: float = 120.0) -> int:
    generator = FeedbackGenerator(seed=seed)
    stream = list(generator.stream(events, malformed_every=40))
    with EmbeddedBroker() as broker:
        shipped = load_settings(None)
        rules, sla_task = rules_with_short_sla(shipped.rules_path, stream)
        short_window(rules)  # rising complaints judged over minutes, not days (wave.py)
        settings = load_settings(
            None,
            kafka_bootstrap_servers=broker.bootstrap_servers,
            kafka_session_timeout_ms=os.environ.get("KAFKA_SESSION_TIMEOUT_MS") or 6000,
            kafka_heartbeat_interval_ms=os.environ.get("KAFKA_HEARTBEAT_INTERVAL_MS") or 1000,
            commit_interval_seconds=0.5,
            metrics=MetricsConfig(emit_every=timedelta(seconds=1)),
            rules_path=rules,
            owners=POOL,
        )
        setup_logging("WARNING" if settings.log_level == "INFO" else settings.log_level, settings.secrets(), settings.log_format)
        say(f"▶ embedded Kafka-compatible broker (Tansu) on {broker.bootstrap_servers}")
        ensure_topics(settings, [settings.feedback_topic], partitions=PARTITIONS)
        where = "posting to Slack" if settings.slack_bot_token else "printed here (set SLACK_BOT_TOKEN to post)"
        say(
            f"▶ worker: rules from {shipped.rules_path} (+ demo-sla: acknowledge within {ACK_WITHIN_S} s), templates from "
            f"{settings.templates_path}; alerts {where}; cx-oncall is a pool of three, in turn"
        )
        if settings.http_port:
            say(f"▶ Prometheus metrics on http://localhost:{settings.http_port}/metrics, probes on /healthz and /readyz (HTTP_PORT)")

        stop, failed, stats = threading.Event(), [], []

        def work() -> None:
            try:
                stats.append(serve(settings, stop))
            except BaseException as err:  # surface it in the summary instead of hanging the demo
                failed.append(err)
                stop.set()

        worker = threading.Thread(target=work, name="worker")
        worker.start()

        producer = make_producer(settings)
        sent = malformed = 0
        futures = []
        for key, value in stream:
            futures.append(producer.send(settings.feedback_topic, key=key, value=value))
            sent += 1
            malformed += key.startswith(b"bad-")
        producer.flush()
        producer.close()
        end: dict[int, int] = {}  # partition -> one past the last offset we produced
        for future in futures:
            meta = future.get()
            end[meta.partition] = max(end.get(meta.partition, 0), meta.offset + 1)
        say(f"▶ produced {sent} feedback events ({malformed} deliberately malformed) to {settings.feedback_topic}\n")

        caught_up = wait_until_committed(settings, end, stop, timeout_s)
        statuses, decided, again, waved = {}, 0, 0, 0
        if caught_up:
            say("\n▶ closing the loop: a teammate works some tasks through the same path as `feedback-worker task ...`")
            desk = work_tasks(settings, sla_task, say)
            escalated = wait_for_escalation(desk, sla_task) if sla_task else None
            if escalated is not None:
                say(
                    f"  {sla_task} ({escalated.customer_name}) was not acknowledged within {ACK_WITHIN_S} s: escalated to "
                    f"{escalated.assignee or escalated.owner} and #cx-leads"
                )
            say("\n▶ the customers are asked again (SURVEY_REQUEST_TOPIC); a survey tool sends their answers back")
            answered = answer_surveys(settings, desk, len(RESOLUTIONS), say)
            for task_id, outcome in wait_for_outcomes(desk, answered).items():
                say(f"  {task_id}: {outcome}")
            say("\n▶ Diagnose: the team resolves its backlog by what each comment says, and the worker learns from it")
            resolve_backlog(desk, {t for t in [sla_task, *answered] if t}, say)
            say("  two customers write in again; their new tasks' cards suggest a root cause:")
            again = answer_again(settings, desk, say)
            say("\n▶ Rising complaints: a complaint nobody wrote a theme for, found by the worker and posted once")
            waved, rising = provoke(settings, say)
            say(rising if rising is not None else "  ✖ no rising complaint was posted within 30 s")
            statuses = status_line(desk)
            desk.close()
            decided = len(answered)
        valid = sent - malformed + decided + again + waved  # every answer the 24h figure must cover before it is shown
        snapshots = wait_for_snapshots(settings, valid, stop, decided) if caught_up else {}
        stop.set()
        worker.join(timeout=30)
        if failed:
            say(f"\n✖ the worker failed: {failed[0]!r}")
            return 1
        tasks = [r for r in read_all(settings, settings.followup_topic) if r.get("type") == "followup.opened"]
        dead = read_all(settings, settings.dlq_topic)
        print_summary(sent, malformed, tasks, dead, stats[0] if stats else None, statuses, decided)
        print_metrics(snapshots)
        print_themes(snapshots, settings.rules_path)
        print_loop(snapshots)
        if not caught_up:
            say(f"✖ the worker did not commit all {sent} events within {timeout_s:.0f}s")
            return 1
        if sum(1 for d in dead if d["type"] == "feedback.invalid") != malformed:
            say("✖ not every malformed message reached the DLQ")
            return 1
        return 0


def say(message: str) -> None:
    print(message, flush=True)


def wait_until_committed(settings: Any, end: dict[int, int], stop: threading.Event, timeout_s: float) -> bool:
    """True once the worker's group has committed every produced offset (lag 0)."""
    probe = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.consumer_group, enable_auto_commit=False)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not stop.is_set():
            if all((probe.committed(TopicPartition(settings.feedback_topic, p)) or 0) >= n for p, n in end.items()):
                return True
            time.sleep(0.25)
        return False
    finally:
        probe.close()


def wait_for_snapshots(
    settings: Any, valid: int, stop: threading.Event, decided: int = 0, timeout_s: float = 20.0
) -> dict[str, dict[str, Any]]:
    """The latest snapshots of the current 24h window, once its overall figure covers every valid answer and the
    `decided` follow-up answers (recovered or still unhappy)."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    tp = TopicPartition(settings.metrics_topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    now = int(time.time())
    current = iso(now - now % 3600 + 3600 - 86400)
    latest: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    latest[record.key.decode()] = json.loads(record.value)
            overall = latest.get(f"24h|{current}|*")
            loop = overall.get("loop", {}) if overall else {}
            if overall and overall["responses"] >= valid and loop.get("closed_recovered", 0) + loop.get("still_unhappy", 0) >= decided:
                break
        return {k: v for k, v in latest.items() if k.startswith(f"24h|{current}|")}
    finally:
        consumer.close()


def print_metrics(snapshots: dict[str, dict[str, Any]]) -> None:
    if not snapshots:
        say("metrics: no snapshot yet")
        return
    lines = [
        "Metrics, last 24h (from the snapshots on the metrics topic)",
        f"  {'':<20}{'answers':>8}{'NPS':>14}{'CSAT':>8}{'CES':>6}{'unhappy':>9}{'revenue at risk':>17}",
    ]
    for _, snap in sorted(snapshots.items(), key=lambda kv: (kv[0].endswith("|*") is False, kv[0])):
        who = "all customers" if not snap["dimension"] else ", ".join(snap["dimension"].values())
        nps, csat, ces = snap["nps"], snap["csat"], snap["ces"]
        nps_text = "—" if nps["score"] is None else f"{nps['score']:+.0f} ±{nps['margin_of_error']:.0f}"
        csat_text = "—" if csat["score"] is None else f"{csat['score']:.0f}%"
        ces_text = "—" if ces["mean"] is None else f"{ces['mean']:.1f}"
        lines.append(
            f"  {who:<20}{snap['responses']:>8}{nps_text:>14}{csat_text:>8}{ces_text:>6}"
            f"{snap['unhappy_customers']:>9}{'$' + format(snap['revenue_at_risk'], ',.2f'):>17}"
        )
    lines.append("═" * 64)
    say("\n".join(lines))


def print_themes(snapshots: dict[str, dict[str, Any]], rules_path: Path) -> None:
    """What each comment theme cost over the same 24 hours (the snapshot's `themes`), largest NPS impact first."""
    overall = next((s for key, s in snapshots.items() if key.endswith("|*")), None)
    if overall is None or "themes" not in overall:
        return
    snapshot = MetricSnapshot.model_validate(overall)
    themes = load_rules(rules_path).themes
    lines = [
        "Themes, last 24h (the `themes` of the same snapshot; `feedback-worker report themes` prints it any time)",
        f"  {snapshot.comments} answers with a comment, {snapshot.tagged} mentioning a theme "
        f"({snapshot.tagged / snapshot.comments:.0%} of them)"
        if snapshot.comments
        else "  no answer with a comment",
    ]
    lines += themes_table(snapshot, lambda theme: themes.labels([theme])[0], indent="  ")
    lines.append("  impact: the NPS minus the NPS of the answers that do not mention the theme, in points")
    lines.append("═" * 64)
    say("\n".join(lines))


def print_loop(snapshots: dict[str, dict[str, Any]]) -> None:
    """The loop KPIs of the same snapshot: did the follow-ups work?"""
    overall = next((s for key, s in snapshots.items() if key.endswith("|*")), None)
    if overall is None or "loop" not in overall:
        return
    loop = overall["loop"]
    resolve_p50 = loop["time_to_resolve"]["p50"]
    rate = "—" if loop["recovery_rate"] is None else f"{loop['recovery_rate']:.0f}%"
    causes = ", ".join(f"{cause} {n}" for cause, n in list(overall["root_causes"].items())[:3]) or "—"
    rows = [
        ("tasks opened", loop["opened"], ""),
        ("acknowledged", loop["acknowledged"], f"{loop['acknowledged_within_sla']} within SLA"),
        (
            "resolved",
            loop["resolved"],
            f"{loop['resolved_within_sla']} within SLA" + ("" if resolve_p50 is None else f", median {resolve_p50:.0f} s to resolve"),
        ),
        ("escalated", loop["escalated"], ""),
        ("recovered", loop["closed_recovered"], f"{loop['still_unhappy']} still unhappy (reopened)"),
        ("recovery rate", rate, ""),
        ("revenue recovered", f"${loop['revenue_recovered']:,.2f}", "per month"),
        ("top root causes", causes, ""),
    ]
    lines = ["The loop, last 24h (the `loop` object of the same snapshot)"]
    lines += [f"  {name:<20}{value!s:>10}   {note}".rstrip() for name, value, note in rows]
    lines.append("═" * 64)
    say("\n".join(lines))


def read_all(settings: Any, topic: str, idle_ms: int = 1500) -> list[dict[str, Any]]:
    """Every record on `topic`, from the beginning, without joining a group."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, consumer_timeout_ms=idle_ms)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    try:
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def print_summary(
    sent: int,
    malformed: int,
    tasks: list[dict[str, Any]],
    dead: list[dict[str, Any]],
    stats: Stats | None = None,
    statuses: dict[str, int] | None = None,
    answers: int = 0,
) -> None:
    by_rule = Counter(task["rule_id"] for task in tasks)
    by_owner = Counter(task["owner"] + (f" → {task['assignee']}" if task.get("assignee") else "") for task in tasks)
    invalid = [d for d in dead if d["type"] == "feedback.invalid"]
    undeliverable = [d for d in dead if d["type"] == "alert.undeliverable"]
    lines = [
        "",
        "═" * 64,
        "Summary",
        "═" * 64,
        f"events produced         {sent:>6}   ({sent - malformed} valid, {malformed} malformed)"
        + (f", then {answers} follow-up answers" if answers else ""),
        f"follow-up tasks opened  {len(tasks):>6}",
    ]
    lines += [f"  {rule:<28}{n:>6}" for rule, n in by_rule.most_common()]
    if statuses:
        lines.append(
            f"tasks by status           {statuses['open']} open, {statuses['acknowledged']} acknowledged, "
            f"{statuses['resolved']} resolved, {statuses['closed']} closed; {statuses['escalated']} escalated"
        )
    if stats is not None:
        lines.append(f"alert messages posted   {stats.alerts_sent:>6}")
        if stats.digests:
            lines.append(
                f"  of which {stats.digests} summaries listing {stats.rate_limited} alerts beyond a channel's "
                "rate limit (CHANNEL_RATE_LIMIT_PER_MINUTE)"
            )
    lines.append("tasks by owner")
    lines += [f"  {owner:<28}{n:>6}" for owner, n in by_owner.most_common()]
    lines.append(f"dead-letter queue       {len(dead):>6}   ({len(invalid)} invalid events, {len(undeliverable)} undeliverable alerts)")
    for reason, n in Counter(d["error"] for d in invalid).most_common(8):
        lines.append(f"  {n} × {reason}")
    lines.append("═" * 64)
    say("\n".join(lines))


if __name__ == "__main__":
    logging.basicConfig()
    sys.exit(run_demo())
