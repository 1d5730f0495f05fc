"""Loop KPIs on the broker: two workers, a kill -9 of the keeper mid-way, and every window's `loop` figures equal to
what the lifecycle records on FOLLOWUP_TOPIC say, computed here independently (counts exact, percentiles exact)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.conftest import WorkerProcess, event_bytes, produce, read_topic, wait_for
from tests.fake_slack import FakeSlack
from worker.tasks import task_id_for

CONFIG = """
root_causes: [shipping-delay, billing-error, product-defect, other]
metrics: {windows: [{size: 1h}, {size: 24h, step: 1h}], dimensions: [customer.segment], emit_every: 1s}
"""
API = {"source": "api", "id": "zendesk", "name": "Zendesk"}
WINDOW_S = 3600


def nearest_rank(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(percent * len(ordered) / 100), 1) - 1]


def expected_loop(records: list[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    """(window start, dimension key) -> the `loop` figures, straight from the records (deduplicated by id)."""
    opened = {r["task_id"]: r for r in records if r["type"] == "followup.opened"}
    lifecycle = sorted({r["id"]: r for r in records if "id" in r}.values(), key=lambda r: r["at"])
    since = {task: datetime.fromisoformat(r["opened_at"]) for task, r in opened.items()}
    sla = {task: r["sla"] for task, r in opened.items()}
    figures: dict[tuple[int, str], dict[str, Any]] = {}

    def add(task: str, at: datetime, change: Callable[[dict[str, Any]], None]) -> None:
        start = int(at.timestamp()) // WINDOW_S * WINDOW_S
        segment = opened[task]["customer"].get("segment")
        for dim in ["*"] + ([f"customer.segment={segment}"] if segment else []):
            change(
                figures.setdefault(
                    (start, dim),
                    {
                        "opened": 0,
                        "acknowledged": 0,
                        "resolved": 0,
                        "reopened": 0,
                        "still_unhappy": 0,
                        "closed_recovered": 0,
                        "closed_no_response": 0,
                        "acknowledged_within_sla": 0,
                        "resolved_within_sla": 0,
                        "ack": [],
                        "res": [],
                        "recovered": {},
                    },
                )
            )

    def count(name: str) -> Callable[[dict[str, Any]], None]:
        return lambda f: f.__setitem__(name, f[name] + 1)

    for task, record in opened.items():
        add(task, datetime.fromisoformat(record["opened_at"]), count("opened"))
    for r in lifecycle:
        task, at = r["task_id"], datetime.fromisoformat(r["at"])
        seconds = (at - since[task]).total_seconds()
        if r["type"] == "followup.acknowledged":
            due = sla[task]["acknowledge_by"]
            within = due is None or at <= datetime.fromisoformat(due)
            add(
                task,
                at,
                lambda f, s=seconds, w=within: f.update(
                    acknowledged=f["acknowledged"] + 1, ack=f["ack"] + [s], acknowledged_within_sla=f["acknowledged_within_sla"] + w
                ),
            )
        elif r["type"] == "followup.resolved":
            within = at <= datetime.fromisoformat(sla[task]["resolve_by"])
            add(
                task,
                at,
                lambda f, s=seconds, w=within: f.update(
                    resolved=f["resolved"] + 1, res=f["res"] + [s], resolved_within_sla=f["resolved_within_sla"] + w
                ),
            )
        elif r["type"] == "followup.reopened":
            since[task] = at
            add(task, at, count("reopened"))
            if r["reason"] == "still_unhappy":
                add(task, at, count("still_unhappy"))
        elif r["type"] == "followup.closed":
            customer = opened[task]["customer"]
            add(task, at, count(f"closed_{r['outcome']}"))
            if r["outcome"] == "recovered":
                add(task, at, lambda f, c=customer: f["recovered"].__setitem__(c["id"], c.get("monthly_value") or 0.0))
    result = {}
    for key, f in figures.items():
        decided = f["closed_recovered"] + f["still_unhappy"]
        result[key] = {
            name: f[name]
            for name in (
                "opened",
                "acknowledged",
                "resolved",
                "reopened",
                "still_unhappy",
                "closed_recovered",
                "closed_no_response",
                "acknowledged_within_sla",
                "resolved_within_sla",
            )
        } | {
            "escalated": 0,
            "time_to_acknowledge": {
                "p50": round(nearest_rank(f["ack"], 50), 2) if f["ack"] else None,
                "p90": round(nearest_rank(f["ack"], 90), 2) if f["ack"] else None,
            },
            "time_to_resolve": {
                "p50": round(nearest_rank(f["res"], 50), 2) if f["res"] else None,
                "p90": round(nearest_rank(f["res"], 90), 2) if f["res"] else None,
            },
            "recovery_rate": round(f["closed_recovered"] / decided * 100, 2) if decided else None,
            "revenue_recovered": round(math.fsum(f["recovered"].values()), 2),
        }
    return result


def latest_loops(bootstrap: str, topics: dict[str, str]) -> dict[tuple[int, str], dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for snapshot in read_topic(bootstrap, topics["METRICS_TOPIC"], 0, timeout=1.5):
        latest[snapshot["key"].decode()] = snapshot
    found = {}
    for key, snapshot in latest.items():
        size, start, dim = key.split("|")
        if size == "1h":
            found[(int(datetime.fromisoformat(start).timestamp()), dim)] = snapshot["loop"]
    return found


def test_loop_kpis_equal_the_lifecycle_records_across_two_workers_and_a_kill_9(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_replicas: Callable[..., list[WorkerProcess]],
) -> None:
    replicas = start_replicas(CONFIG)
    segments = ["smb", "enterprise", "mid-market"]
    customers = [{"id": f"c-kpi-{n}", "segment": segments[n % 3], "monthly_value": 50.0 * (n + 1)} for n in range(12)]
    tasks = [task_id_for(f"kpi-{n}") for n in range(12)]
    produce(
        kafka_bootstrap,
        topics["FEEDBACK_TOPIC"],
        [(c["id"].encode(), event_bytes(event_id=f"kpi-{n}", score=n % 7, customer=c)) for n, c in enumerate(customers)],
    )
    wait_for(
        lambda: {r["task_id"] for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 12, timeout=2)} >= set(tasks),
        60,
        "twelve tasks",
    )

    def send(*actions: dict[str, Any]) -> None:
        produce(
            kafka_bootstrap,
            topics["TASK_ACTIONS_TOPIC"],
            [(a["task_id"].encode(), json.dumps(a | {"actor": API}).encode()) for a in actions],
        )

    causes = ["shipping-delay", "billing-error", "product-defect"]
    send(*({"action": "acknowledge", "task_id": t} for t in tasks[:9]))
    send(*({"action": "resolve", "task_id": t, "root_cause": causes[n % 3], "resolution": "fixed"} for n, t in enumerate(tasks[:4])))
    keeper = wait_for(lambda: next((r for r in replicas if "keeping the tasks" in r.output()), None), 30, "the keeper")
    keeper.kill9()  # with actions in flight: the survivor re-applies what was not committed, once
    send(
        *(
            {"action": "resolve", "task_id": t, "root_cause": causes[n % 3], "resolution": "fixed"}
            for n, t in enumerate(tasks[4:8], start=4)
        )
    )
    resolved = wait_for(
        lambda: (
            {r["task_id"] for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 20, timeout=2) if r["type"] == "followup.resolved"}
            >= set(tasks[:8])
            or None
        ),
        90,
        "eight tasks resolved",
    )
    assert resolved
    # The customers answer the follow-up survey: three recovered, two still unhappy.
    answers = [(0, 5), (1, 4), (2, 5), (3, 1), (4, 2)]
    produce(
        kafka_bootstrap,
        topics["FEEDBACK_TOPIC"],
        [
            (
                customers[n]["id"].encode(),
                event_bytes(
                    event_id=f"kpi-answer-{n}", survey="csat", score=score, customer=customers[n], occurred_at=datetime.now(UTC).isoformat()
                ),
            )
            for n, score in answers
        ],
    )
    wait_for(
        lambda: (
            len(
                [
                    r
                    for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 30, timeout=2)
                    if r["type"] in ("followup.closed", "followup.reopened")
                ]
            )
            >= 5
        ),
        60,
        "five answers applied",
    )

    def agree() -> tuple[dict[Any, Any], dict[Any, Any]] | None:
        expected = expected_loop(read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 30, timeout=2))
        found = latest_loops(kafka_bootstrap, topics)
        return (expected, found) if all(found.get(key) == figures for key, figures in expected.items()) else None

    try:
        expected, found = wait_for(agree, 60, "snapshots agreeing with the records")
    except AssertionError:
        expected = expected_loop(read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 30, timeout=2))
        found = latest_loops(kafka_bootstrap, topics)
        assert {k: found.get(k) for k in expected} == expected
        raise
    overall = [figures for (_, dim), figures in expected.items() if dim == "*"]
    assert sum(f["opened"] for f in overall) == 12 and sum(f["resolved"] for f in overall) == 8
    assert sum(f["closed_recovered"] for f in overall) == 3 and sum(f["still_unhappy"] for f in overall) == 2
