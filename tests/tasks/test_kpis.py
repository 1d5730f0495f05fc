"""Loop KPIs from the tasks (tasks/kpis.py): cases built by the keeper, figures against the lifecycle records.

Random journeys go through `worker.tasks.apply` (acknowledged, escalated, resolved, answered,
reopened, closed); the keeper's cases are tracked into a LoopBook as the worker does (a
`Cases.watchers` callback), and every snapshot the emitter sends is compared with loop figures
computed here directly from the records the keeper returned. No broker: a fake producer.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.metrics.test_windows_state import Fake
from worker.events import FeedbackEvent
from worker.metrics import LoopBook, MetricsConfig, MetricState, SnapshotEmitter, iso
from worker.stream.state import StateView
from worker.tasks import (
    ACTION,
    STILL_UNHAPPY,
    Applied,
    Case,
    Cases,
    FollowupSpec,
    Sla,
    SlaCalendar,
    TaskPolicy,
    apply,
    follow_cases,
    loop_entries,
    open_task,
)

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # a Monday
ACK_S, DUE_S, RECOVERY_S = 1800, 4 * 3600, 2 * 86400
CAUSES = ["shipping-delay", "billing-error", "pricing", "product-defect"]
SEGMENTS = ["smb", "enterprise", None]
VALUES = [None, 40.0, 99.5, 250.0, 1200.25, 40.0, 75.0, None]  # customer c-n is worth VALUES[n] a month
CONFIG = MetricsConfig.model_validate(
    {
        "windows": [{"size": "1h"}, {"size": "24h", "step": "1h"}, {"size": "7d", "step": "1d"}],
        "dimensions": ["customer.segment"],
        "lateness": "30d",
        "emit_every": "1s",
    }
)
AMSTERDAM = SlaCalendar(timezone="Europe/Amsterdam", hours="09:00-17:30")
WORKER = {"source": "worker"}
ALICE = {"source": "cli", "id": "alice"}


class Journeys:
    """Tasks taken through the keeper at random; the keeper's Cases table publishes each case (to a fake producer)."""

    def __init__(self, policy: TaskPolicy, seed: int) -> None:
        self.policy = policy
        self.rng = random.Random(seed)
        self.cases = Cases(StateView("state", "feedback", Fake(), Fake()), policy)
        self.book = LoopBook(CONFIG)
        self.cases.watchers.append(follow_cases(self.book, policy.sla_calendar))
        self.records: dict[str, list[Any]] = defaultdict(list)  # task id -> what the keeper returned, in order
        self.actions = 0
        self.last = START

    def act(self, task_id: str, action: dict[str, Any], at: datetime) -> Case:
        self.actions += 1
        parsed = ACTION.validate_python({"task_id": task_id} | action)
        result = apply(self.cases.get(task_id), parsed, f"a-{self.actions}", at, self.policy, lambda owner: None)
        assert isinstance(result, Applied), result
        self.cases.save(result.case)
        self.records[task_id].append(result.record)
        self.last = max(self.last, at)
        return result.case

    def answer(self, task_id: str, at: datetime, happy: bool) -> None:
        answer = {
            "event_id": f"f-{self.actions}",
            "occurred_at": at.isoformat(),
            "survey": "csat",
            "score": 5 if happy else 2,
            "unhappy": not happy,
        }
        self.act(task_id, {"action": "answer", "actor": WORKER, "answer": answer}, at)

    def journey(self, n: int) -> None:
        rng = self.rng
        t = START + timedelta(minutes=rng.randrange(3 * 24 * 60))
        customer = rng.randrange(len(VALUES))
        segment = rng.choice(SEGMENTS)
        event = FeedbackEvent.model_validate(
            {
                "event_id": f"e-{n}",
                "occurred_at": t.isoformat(),
                "survey": "nps",
                "score": 3,
                "customer": {"id": f"c-{customer}", "segment": segment, "monthly_value": VALUES[customer]},
            }
        )
        acknowledge_by, resolve_by = self.policy.sla(t, timedelta(seconds=ACK_S), timedelta(seconds=DUE_S))
        spec = FollowupSpec(due_in=timedelta(seconds=DUE_S), acknowledge_within=timedelta(seconds=ACK_S))
        task = open_task(
            event, "nps-detractor", ["nps-detractor"], "high", spec, t, sla=Sla(acknowledge_by=acknowledge_by, resolve_by=resolve_by)
        )
        task_id = task.task_id
        self.act(
            task_id,
            {
                "action": "open",
                "actor": WORKER,
                "task": task.model_dump(mode="json"),
                "acknowledge_within_s": ACK_S,
                "due_in_s": DUE_S,
                "recovery_window_s": RECOVERY_S,
                "dims": [f"customer.segment={segment}"] if segment else [],
            },
            t,
        )
        for _ in range(3):  # a task can come back twice
            if rng.random() < 0.1:
                return  # still being worked on
            if rng.random() < 0.3:
                t += timedelta(minutes=rng.randrange(1, 300))
                case = self.cases.get(task_id)
                assert case is not None
                reason = "not_acknowledged" if case.status == "open" else "overdue"
                if not case.escalated(reason):
                    self.act(task_id, {"action": "escalate", "actor": WORKER, "reason": reason}, t)
            if rng.random() < 0.8:
                t += timedelta(minutes=rng.randrange(1, 240))
                self.act(task_id, {"action": "acknowledge", "actor": ALICE}, t)
            t += timedelta(minutes=rng.randrange(5, 2000))
            self.act(task_id, {"action": "resolve", "actor": ALICE, "root_cause": rng.choice(CAUSES), "resolution": "fixed"}, t)
            resolved, roll = t, rng.random()
            if roll < 0.35:
                t += timedelta(minutes=rng.randrange(10, 2000))
                self.answer(task_id, t, happy=True)
                if rng.random() > 0.15:
                    return
                t += timedelta(minutes=30)
                self.answer(task_id, t, happy=False)  # recovered, then unhappy after all (within the window): reopened
            elif roll < 0.6:
                t += timedelta(minutes=rng.randrange(10, 2000))
                self.answer(task_id, t, happy=False)
            elif roll < 0.8:
                t = resolved + timedelta(seconds=RECOVERY_S, minutes=rng.randrange(60))
                self.act(task_id, {"action": "close", "actor": WORKER}, t)
                return
            elif roll < 0.9:
                t += timedelta(minutes=rng.randrange(10, 600))
                self.act(task_id, {"action": "reopen", "actor": ALICE, "reason": "the customer called"}, t)
            else:
                return  # awaiting the answer


# -- the figures, computed directly from the records -------------------------------------------------


def rows_of(journeys: Journeys) -> list[dict[str, Any]]:
    """One row per lifecycle record, with what the KPIs need, from the records alone."""
    rows = []
    calendar = journeys.policy.sla_calendar
    for task_id, records in journeys.records.items():
        opened = records[0]
        assert opened.type == "followup.opened"
        customer = opened.customer
        dims = ["*"] + ([f"customer.segment={customer.segment}"] if customer.segment else [])
        since, acknowledge_by, resolve_by = opened.at, opened.sla.acknowledge_by, opened.sla.resolve_by
        for record in records:
            row: dict[str, Any] = {
                "type": record.type.removeprefix("followup."),
                "at": record.at,
                "task": task_id,
                "customer": customer.id,
                "value": customer.monthly_value,
                "dims": dims,
            }
            if row["type"] == "reopened":
                since = record.at  # the timers restart
                acknowledge_by, resolve_by = journeys.policy.sla(record.at, timedelta(seconds=ACK_S), timedelta(seconds=DUE_S))
                row["reason"] = record.reason
            elif row["type"] in ("acknowledged", "resolved"):
                elapsed = calendar.between(since, record.at) if calendar else record.at - since
                row["seconds"] = elapsed.total_seconds()
                row["within"] = record.at <= (acknowledge_by if row["type"] == "acknowledged" else resolve_by)
                row["cause"] = getattr(record, "root_cause", None)
            elif row["type"] == "closed":
                row["outcome"] = record.outcome
            rows.append(row)
    return rows


def percentile(values: list[float], p: int) -> float | None:
    """The smallest value with at least p % of the values at or below it."""
    if not values:
        return None
    return round(min(v for v in values if sum(x <= v for x in values) * 100 >= p * len(values)), 2)


def figures_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def of(kind: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in rows if r["type"] == kind and all(r.get(k) == v for k, v in match.items())]

    acks, resolutions = of("acknowledged"), of("resolved")
    recovered, unhappy = of("closed", outcome="recovered"), of("reopened", reason=STILL_UNHAPPY)
    decided = len(recovered) + len(unhappy)
    loop = {
        "opened": len(of("opened")),
        "acknowledged": len(acks),
        "resolved": len(resolutions),
        "reopened": len(of("reopened")),
        "still_unhappy": len(unhappy),
        "escalated": len(of("escalated")),
        "closed_recovered": len(recovered),
        "closed_no_response": len(of("closed", outcome="no_response")),
        "acknowledged_within_sla": sum(r["within"] for r in acks),
        "resolved_within_sla": sum(r["within"] for r in resolutions),
        "time_to_acknowledge": {"p50": percentile([r["seconds"] for r in acks], 50), "p90": percentile([r["seconds"] for r in acks], 90)},
        "time_to_resolve": {
            "p50": percentile([r["seconds"] for r in resolutions], 50),
            "p90": percentile([r["seconds"] for r in resolutions], 90),
        },
        "recovery_rate": round(len(recovered) / decided * 100, 2) if decided else None,
        "revenue_recovered": round(sum({r["customer"]: r["value"] or 0.0 for r in recovered}.values()), 2),
    }
    causes = {cause: len({r["task"] for r in resolutions if r["cause"] == cause}) for cause in {r["cause"] for r in resolutions}}
    return {"loop": loop, "root_causes": causes}


def expected_windows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Snapshot key -> the loop figures of the records dated in that window (and dimension)."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        ts = int(row["at"].timestamp())
        for window in CONFIG.windows:
            size, step = window.size_s, window.step_s
            for start in range(ts - ts % step - size + step, ts + 1, step):
                for dim in row["dims"]:
                    groups[f"{window.label}|{iso(start)}|{dim}"].append(row)
    return {key: figures_of(group) for key, group in groups.items()}


def emitted(book: LoopBook, now: datetime) -> dict[str, dict[str, Any]]:
    producer = Fake()
    emitter = SnapshotEmitter(
        CONFIG, MetricState(StateView("state", "feedback", Fake(), producer)), producer, "metrics", {0}.__contains__, lambda: 1, book
    )
    emitter.tick(int(now.timestamp()))
    sent = {key.decode(): json.loads(value) for topic, key, value in producer.sent if topic == "metrics"}
    return {key: {"loop": s["loop"], "root_causes": s["root_causes"]} for key, s in sent.items()}


@pytest.mark.parametrize("policy", [TaskPolicy(), TaskPolicy(sla_calendar=AMSTERDAM)], ids=["wall clock", "business hours"])
def test_every_snapshots_loop_figures_equal_those_computed_from_the_lifecycle_records(policy: TaskPolicy) -> None:
    journeys = Journeys(policy, seed=12)
    for n in range(150):
        journeys.journey(n)
    rows = rows_of(journeys)
    kinds = {row["type"] for row in rows} | {row.get("outcome") for row in rows} | {row.get("reason") for row in rows}
    assert {"opened", "acknowledged", "escalated", "resolved", "reopened", "closed", "recovered", "no_response", STILL_UNHAPPY} <= kinds
    expected = expected_windows(rows)

    got = emitted(journeys.book, journeys.last + timedelta(minutes=1))
    assert got.keys() == expected.keys()  # every window with task activity, and no other
    wrong = {key: (got[key], want) for key, want in expected.items() if got[key] != want}
    assert wrong == {}, f"{len(wrong)} of {len(expected)} windows differ, e.g. {next(iter(wrong.items()))}"
    week = got["7d|2026-11-23T00:00:00+00:00|*"]["loop"]
    assert week["opened"] == 150 and 0 < week["recovery_rate"] < 100 and week["revenue_recovered"] > 0


def test_another_replica_reading_the_cases_twice_counts_each_once() -> None:
    """A replica (or a restart) rebuilds the same figures from the state topic's cases, however often it reads them."""
    journeys = Journeys(TaskPolicy(), seed=3)
    for n in range(40):
        journeys.journey(n)
    replica = Cases(StateView("state", "feedback", Fake(), Fake()), TaskPolicy())
    book = LoopBook(CONFIG)
    replica.watchers.append(follow_cases(book, None))
    published = [(key.decode(), value) for _, key, value in journeys.cases.view.producer.sent if key.startswith(b"task|")]
    for _ in range(2):  # read once, then again from the start (a crash before the consumer position moved on)
        for key, value in published:
            replica.view._apply(key, value)
    now = journeys.last + timedelta(minutes=1)
    assert emitted(book, now) == emitted(journeys.book, now) == expected_windows(rows_of(journeys))


def test_a_deleted_case_keeps_its_counts_in_the_windows_that_counted_it() -> None:
    journeys = Journeys(TaskPolicy(), seed=5)
    journeys.journey(0)
    before = emitted(journeys.book, journeys.last + timedelta(minutes=1))
    (task_id,) = journeys.records
    journeys.cases._put(task_id, None)  # what a tombstone read back from the state topic does
    assert journeys.cases.get(task_id) is None and journeys.book.changed == set()  # no window changed
    emitter = SnapshotEmitter(
        CONFIG, MetricState(StateView("state", "feedback", Fake(), Fake())), Fake(), "metrics", {0}.__contains__, lambda: 1, journeys.book
    )
    now = int(journeys.last.timestamp()) + 60
    after = {
        key: {"loop": s.loop.model_dump(), "root_causes": s.root_causes}
        for key in before
        if (s := emitter.snapshot(window_of(key), False, now))
    }
    assert after == before and len(before) > 20


def window_of(key: str) -> tuple[int, int, str]:
    label, start, dim = key.split("|")
    size = next(w.size_s for w in CONFIG.windows if w.label == label)
    return size, int(datetime.fromisoformat(start).timestamp()), "" if dim == "*" else dim


def test_times_to_acknowledge_and_resolve_count_business_hours_from_the_latest_reopening() -> None:
    policy = TaskPolicy(sla_calendar=AMSTERDAM)
    friday = datetime(2026, 11, 27, 16, 20, tzinfo=UTC)  # 17:20 in Amsterdam, ten minutes before closing
    monday = datetime(2026, 11, 30, 8, 10, tzinfo=UTC)  # 09:10, ten minutes after opening
    journeys = Journeys(policy, seed=1)
    event = FeedbackEvent.model_validate(
        {
            "event_id": "e-fri",
            "occurred_at": friday.isoformat(),
            "survey": "nps",
            "score": 1,
            "customer": {"id": "c-1", "monthly_value": 99.0},
        }
    )
    acknowledge_by, resolve_by = policy.sla(friday, timedelta(hours=1), timedelta(hours=4))
    assert (acknowledge_by, resolve_by) == (datetime(2026, 11, 30, 8, 50, tzinfo=UTC), datetime(2026, 11, 30, 11, 50, tzinfo=UTC))
    task = open_task(event, "r", ["r"], "high", FollowupSpec(), friday, sla=Sla(acknowledge_by=acknowledge_by, resolve_by=resolve_by))
    t = task.task_id
    journeys.act(
        t,
        {"action": "open", "actor": WORKER, "task": task.model_dump(mode="json"), "acknowledge_within_s": 3600, "due_in_s": 4 * 3600},
        friday,
    )
    journeys.act(t, {"action": "acknowledge", "actor": ALICE}, monday)
    journeys.act(t, {"action": "resolve", "actor": ALICE, "root_cause": "pricing", "resolution": "refund"}, monday + timedelta(hours=3))
    reopened_at = monday + timedelta(hours=7, minutes=50)  # 17:00 Amsterdam
    journeys.act(t, {"action": "reopen", "actor": ALICE, "reason": "not fixed"}, reopened_at)
    journeys.act(
        t,
        {"action": "resolve", "actor": ALICE, "root_cause": "pricing", "resolution": "refund again"},
        reopened_at + timedelta(hours=16, minutes=30),
    )  # 09:30 on Tuesday

    case = journeys.cases.get(t)
    assert case is not None
    timed = [(e.kind, e.seconds, e.within_sla) for e in loop_entries(case, AMSTERDAM) if e.seconds is not None]
    assert timed == [
        ("acknowledged", 1200.0, True),  # 10 minutes on Friday + 10 on Monday; due at 09:50 Monday
        ("resolved", 1200.0 + 3 * 3600, True),  # due at 12:50 Monday, resolved at 12:10
        ("resolved", 3600.0, True),  # from the reopening: 30 minutes on Monday evening + 30 on Tuesday morning
    ]
    wall = [e.seconds for e in loop_entries(case, None) if e.seconds is not None]
    assert wall == [(monday - friday).total_seconds(), (monday - friday).total_seconds() + 3 * 3600, 16.5 * 3600]
