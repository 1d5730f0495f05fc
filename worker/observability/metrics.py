"""/metrics: what the loop already keeps, read when Prometheus scrapes; and how long Slack takes.

Nothing here runs per event. The collector reads the loop's counters (stream/counters.py), the
checkpoint, the consumer's assignment and the state tables at scrape time, holding the
worker's lock for the copies (so a scrape sees whole batches, and the loop waits at most for
the copying). Slack's latency is the one thing observed as it happens: the sink's threads
report each API call (delivery/sinks.py), off the loop's thread.

Tables every replica holds alike (tasks, silences, state keys) are the same on every
replica: aggregate them with max(), not sum(). Counters are per replica: sum() them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kafka.errors import IllegalStateError
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from ..delivery import Call
from ..loop import Worker

log = logging.getLogger(__name__)

PREFIX = "feedback_worker_"
#: Slack answers in 0.1-0.5 s when well; a retry storm or a hung connection shows in the top buckets (timeout: 10 s).
SLACK_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOCK_WAIT_S = 1.0  # a scrape waits this long for the loop's batch to end; then it reads without the lock
TASK_STATUSES = ("open", "acknowledged", "resolved")


class SlackCalls:
    """feedback_worker_slack_request_duration_seconds{method} and _requests_total{method,result}, fed by the sink."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            f"{PREFIX}slack_request_duration_seconds",
            "Time of one Slack Web API call, by method.",
            ["method"],
            registry=registry,
            buckets=SLACK_BUCKETS,
        )
        self.requests = Counter(
            f"{PREFIX}slack_requests",
            "Slack Web API calls by method and how they ended: ok, "
            "refused (Slack said no: bad channel, bad token) or unavailable (no answer, 5xx, 429: retried).",
            ["method", "result"],
            registry=registry,
        )

    def __call__(self, method: str, seconds: float, call: Call) -> None:
        self.duration.labels(method).observe(seconds)
        self.requests.labels(method, call.result).inc()


class WorkerCollector(Collector):
    """The loop's figures as Prometheus metrics; empty until `attach` (the worker is built after the server starts)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.worker: Worker | None = None
        self.sink: Any = None

    def attach(self, worker: Worker, sink: Any) -> None:
        self.sink = sink
        self.worker = worker

    def describe(self) -> list[Metric]:
        return []  # names are known only by collecting; registering must not collect

    def collect(self) -> Iterator[Metric]:
        worker = self.worker
        if worker is None:
            return iter(())
        with _held(worker.lock):
            families, cases = self._read(worker)
        families.extend(_tasks(cases, worker.clock()))
        return iter(families)

    # -- under the worker's lock: copies and counts, nothing slow ------------------------------------

    def _read(self, worker: Worker) -> tuple[list[Metric], list[Any]]:
        stats, settings = worker.stats, worker.settings
        events, actions = settings.feedback_topic, settings.task_actions_topic
        consumed = counter("events_consumed", "Feedback events fetched and handled, by topic and partition.", ["topic", "partition"])
        valid = counter("events_valid", "Feedback events that passed validation, by topic and partition.", ["topic", "partition"])
        invalid = counter(
            "events_invalid", "Feedback events sent to the DLQ as invalid (or with a future timestamp).", ["topic", "partition"]
        )
        asked = counter("task_actions_consumed", "Task actions read from TASK_ACTIONS_TOPIC.", ["topic", "partition"])
        bad = dict(list(stats.invalid_by.items()))
        for (topic, partition), n in sorted(list(stats.polled.items())):
            labels = [topic, str(partition)]
            if topic == events:
                wrong = bad.get((topic, partition), 0)
                consumed.add_metric(labels, n)
                valid.add_metric(labels, n - wrong)
                invalid.add_metric(labels, wrong)
            elif topic == actions:
                asked.add_metric(labels, n)
        families: list[Metric] = [consumed, valid, invalid, asked]
        families.append(labelled(counter("rule_matches", "Events a rule matched, by rule id.", ["rule"]), stats.by_rule))
        families.append(
            labelled(
                counter(
                    "alerts_posted", "Slack messages accepted (alerts, replies, digests, escalations), by channel as routed.", ["channel"]
                ),
                stats.posted,
            )
        )
        families.append(
            labelled(
                counter(
                    "alerts_failed",
                    "Alerts dead-lettered (one per event): Slack refused them for good, or the template failed.",
                    ["channel", "reason"],
                ),
                stats.failed,
            )
        )
        retries = getattr(self.sink, "retries", dict)  # SlackSink's; stdout never retries
        families.append(
            labelled(
                counter(
                    "alerts_retried",
                    "Slack post attempts retried after a transient failure (connection, 5xx, 429), by channel.",
                    ["channel"],
                ),
                retries(),
            )
        )
        families.append(
            labelled(
                counter(
                    "alerts_rate_limited",
                    "Alerts folded into a rate-limit summary (CHANNEL_RATE_LIMIT_PER_MINUTE), by channel.",
                    ["channel"],
                ),
                stats.rate_limited_by,
            )
        )
        families.append(
            labelled(
                counter("escalations", "SLA escalations applied by this worker (the keeper), by reason.", ["reason"]), stats.escalations
            )
        )
        families.append(labelled(counter("dead_letters", "Records written to DLQ_TOPIC, by type.", ["type"]), worker.dead_letters.sent))
        reloads = counter("rules_reloads", "Rule and template reloads, by outcome.", ["outcome"])
        reloads.add_metric(["accepted"], stats.reloads)
        reloads.add_metric(["rejected"], stats.reloads_rejected)
        families.append(reloads)
        for name, value, help_text in (
            ("tasks_opened", stats.tasks, "Follow-up tasks opened by this worker."),
            ("alerts_silenced", stats.silenced, "Alerts held back by a silence (their tasks opened)."),
            ("alerts_throttled", stats.throttled, "Matches that replied in an open task's thread instead of alerting anew."),
            ("alerts_replayed", stats.replayed, "Replayed matches whose message was in Slack already: not posted again."),
            ("digests", stats.digests, "Digest and rate-limit summary messages posted."),
            ("metric_alerts", stats.metric_alerts, "Metric rules that fired."),
            ("rising_complaints", stats.rising_complaints, "Rising complaints posted (a term far above its usual count)."),
            ("events_late", stats.late, "Valid events too late for every metric window."),
            ("matches_too_old", stats.too_old, "Matches older than ALERT_RECORD_RETENTION: no task, no alert (a replay alerts once)."),
            ("consumer_pauses", stats.pauses, "Times fetching paused because MAX_IN_FLIGHT_ALERTS events waited."),
            (
                "records_put_back",
                worker.membership.put_back,
                "Records fetched while the group membership was in doubt: not handled, fetched again.",
            ),
            ("snapshots_emitted", worker.metering.emitter.emitted if worker.metering else 0, "Metric snapshots emitted."),
        ):
            families.append(single(counter(name, help_text), value))
        families.extend(self._position(worker))
        families.extend(_tables(worker))
        return families, list(worker.cases.by_id.values())

    def _position(self, worker: Worker) -> list[Metric]:
        """Lag, commit age, what is in flight: where the loop stands."""
        now = self.clock()
        lag = gauge(
            "consumer_lag_records",
            "Records not yet committed: the highwater the last fetch reported minus the committed position, by topic and partition.",
            ["topic", "partition"],
        )
        assigned = gauge("assigned_partitions", "Partitions this worker owns, by topic.", ["topic"])
        owned: dict[str, int] = {}
        for tp in sorted(worker.consumer.assignment()):
            owned[tp.topic] = owned.get(tp.topic, 0) + 1
            behind = _lag(worker, tp)
            if behind is not None:
                lag.add_metric([tp.topic, str(tp.partition)], behind)
        for topic, n in sorted(owned.items()):
            assigned.add_metric([topic], n)
        checkpoint = worker.checkpoint
        return [
            lag,
            assigned,
            single(gauge("last_commit_age_seconds", "Seconds since the last commit sequence completed."), now - checkpoint.committed_at),
            single(gauge("last_poll_age_seconds", "Seconds since the loop last returned from poll() (/healthz)."), now - worker.polled_at),
            single(
                gauge(
                    "alerts_in_flight",
                    "Events whose work is not done yet (an alert waiting for its pool's member, a card "
                    "update for Slack): their offsets are held.",
                ),
                checkpoint.waiting,
            ),
            single(
                gauge("alerts_in_flight_limit", "MAX_IN_FLIGHT_ALERTS: fetching pauses at this many."), worker.settings.max_in_flight_alerts
            ),
            labelled(
                gauge(
                    "slack_owed",
                    "Slack messages owed and not yet answered, by channel as routed: on record in the "
                    "state topic (every replica's), so a crash loses none.",
                    ["channel"],
                ),
                {channel: n for channel, n in list(worker.outbox.posts.owed.items()) if n},
            ),
            labelled(
                gauge(
                    "slack_owed_unanswered",
                    "Posts of this worker to a channel that Slack has not answered yet; at "
                    "MAX_OWED_PER_CHANNEL new alerts for it go into its summary.",
                    ["channel"],
                ),
                {channel: n for channel, n in list(worker.outbox.queued.items()) if n},
            ),
            single(gauge("slack_owed_limit", "MAX_OWED_PER_CHANNEL."), worker.settings.max_owed_per_channel),
            single(gauge("info", "The worker's version.", ["version"]), 1, [__version__]),
        ]


def _lag(worker: Worker, tp: Any) -> int | None:
    """Highwater from the fetch responses minus the committed position; None before the first fetch.

    (Not the consumer's end_offsets(): it costs a request, and the embedded Tansu broker answers it wrongly.)"""
    try:
        high = worker.consumer.highwater(tp)
    except IllegalStateError:  # revoked since the assignment was read
        return None
    if high is None:
        return None
    state = worker.checkpoint.partitions.get(tp)
    if state is not None and state.committed >= 0:
        position = state.committed
    elif state is not None and state.started >= 0:
        position = state.started  # nothing committed by this worker yet: the group's position, where it started reading
    else:
        position = high  # nothing read since assigned: the fetch found nothing past the committed position
    return max(high - position, 0)


def _tables(worker: Worker) -> list[Metric]:
    """What the state topic holds (the same on every replica): keys by kind, active silences."""
    keys = {
        "post": len(worker.outbox.posts.by_slot),
        "silence": len(worker.silences.by_id),
        "throttle": len(worker.throttle.episodes),
        "task": len(worker.cases.by_id),
        "outcome": len(worker.cases.outcomes),
        "pool": len(worker.cases.rotation),
    }
    if worker.metering is not None:
        state = worker.metering.state
        keys |= {
            "pane": sum(len(partials) for partials in list(state.panes.values())),
            "position": len(state.positions),
            "final": len(state.finals),
            "rule": len(state.firing),
        }
    now = worker.clock()
    active = sum(1 for silence in list(worker.silences.by_id.values()) if silence.active(now))
    return [
        labelled(
            gauge("state_keys", "Keys of the state topic held in memory (the compacted topic's live records), by kind.", ["kind"]), keys
        ),
        single(gauge("silences_active", "Silences in force now."), active),
    ]


def _tasks(cases: list[Any], now: Any) -> list[Metric]:
    """Tasks by status and overdue, from the case table every replica holds (counted outside the lock)."""
    by_status = dict.fromkeys(TASK_STATUSES, 0)
    overdue = 0
    for case in cases:
        by_status[case.status] = by_status.get(case.status, 0) + 1
        overdue += case.overdue(now)
    return [
        labelled(gauge("tasks", "Follow-up tasks held in the state topic, by status.", ["status"]), by_status),
        single(gauge("tasks_overdue", "Unresolved tasks past their resolve-by time."), overdue),
    ]


# -- building families -------------------------------------------------------------------------------


def counter(name: str, help_text: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, help_text, labels=labels or [])


def gauge(name: str, help_text: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, help_text, labels=labels or [])


def single(family: Any, value: float, labels: list[str] | None = None) -> Any:
    family.add_metric(labels or [], value)
    return family


def labelled(family: Any, values: Any) -> Any:
    """One sample per key of a counter or dict; a tuple key gives several label values."""
    for key, value in sorted(list(values.items())):
        family.add_metric(list(key) if isinstance(key, tuple) else [str(key)], value)
    return family


@contextmanager
def _held(lock: threading.Lock) -> Iterator[None]:
    """The worker's lock if the loop lets go within LOCK_WAIT_S; else read without it (the copies are atomic)."""
    acquired = lock.acquire(timeout=LOCK_WAIT_S)
    if not acquired:
        log.debug("/metrics read without the worker's lock: the loop held it over %.1f s", LOCK_WAIT_S)
    try:
        yield
    finally:
        if acquired:
            lock.release()
