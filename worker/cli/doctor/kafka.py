"""The Kafka checks: the brokers answer, the topics are as the worker needs them (judged as at start-up), the
consumer group's members and lag. Every step is bounded: a broker that does not answer is a ✗, never a hang."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ...config import Settings
from .rows import FAIL, OK, SKIP, Row

#: A step whose client outlives its own timeout by this much is abandoned (kafka-python may retry inside it).
GRACE_S = 2.0
T = TypeVar("T")

if TYPE_CHECKING:
    from ...broker import Topology


class NoAnswer(Exception):
    """A step outlived its timeout."""


def bounded(step: Callable[[], T], timeout_s: float) -> T:
    """`step()`, given up on (NoAnswer) once it has run `timeout_s` + GRACE_S: a client that ignores its own timeout
    must not hang the doctor. The abandoned thread ends when its client does."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, step()))
        except BaseException as err:  # handed to the caller's thread
            outcome.append((False, err))

    thread = threading.Thread(target=run, name="doctor-step", daemon=True)
    thread.start()
    thread.join(timeout_s + GRACE_S)
    if not outcome:
        raise NoAnswer(timeout_s)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _admin(settings: Settings, timeout: int) -> Any:
    """An admin client that waits `timeout` s for the brokers and for each answer (kafka-python's defaults: 30 s)."""
    from kafka import KafkaAdminClient

    from ...broker import common_config

    class Admin(KafkaAdminClient):
        def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
            # kafka-python 3.0 raises on an ACL operation it has no name for (the embedded Tansu reports one in
            # every group description); the doctor reads no ACLs.
            obj.pop("authorized_operations", None)
            return obj

    ms = timeout * 1000
    config = common_config(settings) | {"client_id": "feedback-worker-doctor", "request_timeout_ms": ms, "bootstrap_timeout_ms": ms}
    return Admin(**config)


def kafka_rows(settings: Settings, timeout: int) -> list[Row]:
    from kafka.errors import KafkaError, KafkaTimeoutError

    servers = settings.kafka_bootstrap_servers
    fix = "check KAFKA_BOOTSTRAP_SERVERS, that the brokers run and are reachable from here, and KAFKA_SECURITY_PROTOCOL / SASL"
    try:
        admin = bounded(lambda: _admin(settings, timeout), timeout)
    except (NoAnswer, KafkaTimeoutError):
        return [Row(FAIL, "Kafka", f"no answer from {servers} after {timeout} s", fix), _not_checked("Kafka topics and consumer group")]
    except Exception as err:  # refused by the brokers (SASL, TLS) or a client setting (a missing CA file)
        return [Row(FAIL, "Kafka", f"{servers}: {type(err).__name__}: {err}", fix), _not_checked("Kafka topics and consumer group")]
    from ...broker import check_topology, state_topic

    rows: list[Row] = []
    try:
        try:
            cluster = bounded(admin.describe_cluster, timeout)
            brokers = len(cluster.get("brokers") or [])
            rows.append(Row(OK, "Kafka", f"{servers} answers: {brokers} broker(s), cluster {cluster.get('cluster_id')}"))
            state = bounded(lambda: state_topic(settings, timeout), timeout)
            topology = bounded(lambda: check_topology(admin, settings, state), timeout)
            rows += topic_rows(settings, state, topology)
            feedback = topology.facts.get(settings.feedback_topic)
            rows += group_rows(admin, settings, feedback.partitions if feedback is not None else None, timeout)
        except NoAnswer:
            rows.append(Row(FAIL, "Kafka", f"{servers} stopped answering: no answer after {timeout} s", fix))
        except KafkaError as err:
            rows.append(Row(FAIL, "Kafka", f"{servers}: {type(err).__name__}: {err}", fix))
    finally:
        threading.Thread(target=admin.close, name="doctor-admin-close", daemon=True).start()  # a stuck broker must not hold us
    return rows


def _not_checked(what: str) -> Row:
    return Row(SKIP, what, "not checked: no broker answered")


def topic_rows(settings: Settings, state: str, topology: Topology) -> list[Row]:
    """Every topic the worker relies on, judged as at start-up: a ✗ per problem, in the words `run` uses
    (`check: detail. Fix: fix` is the Problem's own message)."""
    from ...broker import topics_of

    rows: list[Row] = []
    for setting, topic in topics_of(settings, state).items():
        problems = [problem for problem in topology.problems if problem.setting == setting]
        for problem in problems:
            rows.append(Row(FAIL, f"{setting} {topic!r}", f"{problem.found}; the worker needs {problem.needs}", problem.fix))
        if problems:
            continue
        fact = topology.facts.get(topic)
        legacy = (
            " (the state topic from before STATE_TOPIC was named, still in use: docs/settings.md)"
            if setting == "STATE_TOPIC" and topic != settings.state_topic
            else ""
        )
        if fact is None or not fact.exists:
            rows.append(Row(SKIP, f"{setting} {topic!r}", _missing(setting, settings)))
        else:
            policy = (fact.configs or {}).get("cleanup.policy")
            shown = f", cleanup.policy={policy}" if policy else ""
            rows.append(Row(OK, f"{setting} {topic!r}", f"{fact.partitions} partition(s){shown}{legacy}"))
    for warning in topology.warnings:
        rows.append(Row(SKIP, "topic configs", warning))
    return rows


def _missing(setting: str, settings: Settings) -> str:
    if setting == "FEEDBACK_TOPIC":
        return "does not exist yet: the worker waits for the producers to create it"
    if settings.create_topics:
        return "does not exist yet: the worker creates it at start-up (CREATE_TOPICS=true)"
    return "does not exist (CREATE_TOPICS=false): the worker writes to it; create it, unless the brokers create topics on first use"


def group_rows(admin: Any, settings: Settings, partitions: int | None, timeout: int) -> list[Row]:
    """The consumer group: who is in it, and how far behind FEEDBACK_TOPIC (`partitions`; None: missing) its committed
    offsets are."""
    from kafka import TopicPartition

    group, topic = settings.consumer_group, settings.feedback_topic
    described = bounded(lambda: admin.describe_groups([group]), timeout).get(group) or {}
    members = described.get("members") or []
    state = described.get("group_state") or "unknown"
    check = f"consumer group {group!r}"
    if not members:
        rows = [Row(SKIP, check, f"no member now (state {state}): no worker runs with this group, or none has joined yet")]
    else:
        hosts = sorted({m.get("client_host") or "" for m in members} - {""})
        where = f" on {', '.join(hosts)}" if hosts else ""
        idle = (
            f"; more members than FEEDBACK_TOPIC's {partitions} partition(s): {len(members) - partitions} wait idle"
            if partitions is not None and len(members) > partitions
            else ""
        )
        rows = [Row(OK, check, f"{len(members)} member(s){where}, state {state}{idle}")]
    if partitions is None:
        return [*rows, Row(SKIP, f"lag on {topic!r}", "FEEDBACK_TOPIC does not exist yet")]
    offsets = bounded(lambda: admin.list_group_offsets({group: None}), timeout).get(group) or {}
    committed = {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset >= 0}
    if not committed:
        start = settings.kafka_auto_offset_reset
        return [*rows, Row(SKIP, f"lag on {topic!r}", f"the group has committed nothing on it yet: it will start at the {start} offset")]
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    high = bounded(lambda: high_watermarks(settings, tps, committed, timeout), timeout)
    return [*rows, lag_row(topic, partitions, committed, high)]


def high_watermarks(settings: Settings, tps: list[Any], committed: dict[int, int], timeout: int) -> dict[int, int]:
    """Each partition's high watermark as a fetch reports it, read without a group (nothing joins or commits).

    Not `end_offsets()` / ListOffsets: the embedded Tansu broker answers those wrongly (backtest/topic.py);
    a fetch's high watermark is what the worker's own lag figure uses (observability/metrics.py)."""
    from kafka import KafkaConsumer

    from ...broker import common_config

    config = common_config(settings) | {
        "client_id": "feedback-worker-doctor",
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "latest",  # an offset gone to retention: jump to the end, read nothing
        "max_poll_records": 1,
        "max_partition_fetch_bytes": 1,  # one batch per partition at most: only the watermark is wanted
        "fetch_max_wait_ms": 100,
        "bootstrap_timeout_ms": timeout * 1000,
    }
    consumer = KafkaConsumer(**config)
    try:
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, committed.get(tp.partition, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in tps):
            consumer.poll(timeout_ms=100)
        marks: dict[int, int] = {}
        for tp in tps:
            mark = consumer.highwater(tp)
            if mark is not None:
                marks[tp.partition] = mark
        return marks
    finally:
        consumer.close()


def lag_row(topic: str, partitions: int, committed: dict[int, int], high: dict[int, int]) -> Row:
    """Records on `topic` the group has not committed: high watermark − committed offset, per partition."""
    parts, total, unknown = [], 0, []
    for p in range(partitions):
        if p not in committed:
            parts.append(f"p{p} –")
            unknown.append(f"p{p}: nothing committed")
        elif p not in high:
            parts.append(f"p{p} –")
            unknown.append(f"p{p}: no fetch answered")
        else:
            behind = max(0, high[p] - committed[p])
            total += behind
            parts.append(f"p{p} {behind}")
    note = f" ({'; '.join(unknown)})" if unknown else ""
    return Row(OK, f"lag on {topic!r}", f"{total} record(s) not yet committed: {', '.join(parts)}{note}")
