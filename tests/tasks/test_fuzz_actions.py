"""Fuzzing the task actions topic: 100,000 random and mutated action records, as Keeper.handle takes them.

Anyone with write access to TASK_ACTIONS_TOPIC (a CRM integration, a script, a bug) can send
anything. Each record is validated (`ACTION.validate_json`): a malformed one must become a
dead letter with a one-line reason; a well-formed one is applied to the task in each of its
states (open, acknowledged, resolved, closed, unknown), and must be applied with a record that
serialises, or refused with a reason that names the task. Nothing else may escape, and no
record may take long. Seeded: the same inputs on every run; the counts are printed.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.fuzzing import cpu_budget, cpu_time, fuzzed_values, watchdog
from tests.tasks.test_keeper import ALICE, EVENT, NOW, POLICY, RESOLVE, new_case, no_pool, status_after
from worker.stream import deadletter
from worker.tasks import ACTION, Applied, Case, FollowupAnswer, FollowupSpec, Refused, apply, open_task

pytestmark = pytest.mark.fuzz

RECORDS = 100_000
SEED = 20261130
SLOWEST_ALLOWED_S = 0.5
WORKER = {"source": "worker"}
TASK = open_task(EVENT, "nps-detractor", ["nps-detractor"], "high", FollowupSpec(owner="cx-team", due_in=timedelta(hours=4)), NOW)


def states() -> dict[str, Case | None]:
    """The task in each state an action can meet it in."""
    opened = new_case()
    resolved = status_after(opened, ("resolve", RESOLVE))
    answer = FollowupAnswer.of(EVENT.model_copy(update={"event_id": "e-2", "score": 9, "occurred_at": NOW + timedelta(minutes=1)}))
    closed = apply(
        resolved,
        ACTION.validate_python({"action": "answer", "task_id": opened.task_id, "actor": WORKER, "answer": answer.model_dump(mode="json")}),
        "answer",
        NOW,
        POLICY,
        no_pool,
    )
    assert isinstance(closed, Applied) and closed.case.status == "closed"
    return {
        "open": opened,
        "acknowledged": status_after(opened, ("acknowledge", {})),
        "resolved": resolved,
        "closed": closed.case,
        "unknown": None,
    }


def seeds(case: Case) -> list[dict[str, Any]]:
    """One valid record of every action, people's and the worker's own."""
    task_id = case.task_id
    answer = FollowupAnswer.of(EVENT.model_copy(update={"event_id": "e-3", "score": 3, "occurred_at": NOW + timedelta(minutes=2)}))
    person = [
        {"action": "acknowledge"},
        {"action": "assign", "assignee": "U02BBB"},
        {"action": "step", "step": "empathize", "done": True, "note": "called them"},
        {"action": "resolve", **RESOLVE},
        {"action": "reopen", "reason": "they wrote again"},
    ]
    own = [
        {"action": "escalate", "reason": "not_acknowledged", "level": 1},
        {"action": "answer", "answer": answer.model_dump(mode="json")},
        {"action": "close"},
        {"action": "open", "task": json.loads(TASK.model_dump_json()), "due_in_s": 14400, "acknowledge_within_s": 1800},
    ]
    return [{"task_id": task_id, "actor": ALICE, "action_id": "a-1"} | p for p in person] + [
        {"task_id": task_id, "actor": WORKER} | o for o in own
    ]


class Tally:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.slowest = (0.0, b"")


def check_record(value: bytes | None, n: int, cases: dict[str, Case | None], tally: Tally) -> None:
    """What Keeper.handle does with one record, with the properties it relies on."""
    started = cpu_time()
    try:
        action = ACTION.validate_json(value if value is not None else b"")
    except ValidationError as exc:
        letter = deadletter.invalid_event(exc, value, deadletter.Source(topic="feedback.task-actions", partition=0, offset=n), "action")
        assert letter.error.strip() and letter.error.splitlines() == [letter.error], (value, letter.error)
        assert deadletter.DeadLetter.model_validate_json(letter.model_dump_json()).error == letter.error
        tally.kinds["invalid"] += 1
        tally.reasons[letter.errors[0].type if letter.errors else letter.error.split(" (")[0]] += 1
    else:
        tally.kinds["valid"] += 1
        for state, case in cases.items():
            if case is not None and action.task_id != case.task_id:
                case = None  # another task id: unknown to the keeper
            result = apply(case, action, action.action_id or f"offset-{n}", NOW + timedelta(minutes=5), POLICY, no_pool)
            if isinstance(result, Refused):
                assert result.reason.strip() and "\n" not in result.reason, (value, result.reason)
                assert action.task_id in result.reason or repr(action.task_id) in result.reason, (value, result.reason)
                tally.kinds[f"refused when {state}"] += 1
            elif isinstance(result, Applied):
                type(result.record).model_validate_json(result.record.model_dump_json())  # what goes to FOLLOWUP_TOPIC
                Case.model_validate_json(result.case.model_dump_json())  # what goes to the state topic
                tally.kinds[f"applied when {state}"] += 1
            else:
                assert result is None
                tally.kinds[f"duplicate when {state}"] += 1
    elapsed = cpu_time() - started
    if elapsed > tally.slowest[0]:
        tally.slowest = (elapsed, value or b"")


def test_100000_random_and_mutated_action_records_are_applied_refused_or_dead_lettered(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    cases = states()
    valid = seeds(cases["open"])  # type: ignore[arg-type]
    tally = Tally()
    started = time.perf_counter()
    with watchdog():
        for n, value in fuzzed_values(rng, RECORDS, lambda _: rng.choice(valid)):
            check_record(value, n, cases, tally)
    seconds = time.perf_counter() - started
    reasons = ", ".join(f"{kind} {count}" for kind, count in tally.reasons.most_common(12))
    with capsys.disabled():
        print(
            f"\naction fuzz: {RECORDS} records in {seconds:.1f}s: {dict(sorted(tally.kinds.items()))}; "
            f"first error: {reasons}; slowest {tally.slowest[0] * 1000:.1f} ms CPU"
        )
    assert tally.kinds["valid"] + tally.kinds["invalid"] == RECORDS
    assert tally.kinds["valid"] >= RECORDS * 0.1 and tally.kinds["invalid"] >= RECORDS * 0.5
    assert tally.kinds["applied when open"] and tally.kinds["refused when resolved"] and tally.kinds["refused when unknown"]
    assert len(tally.reasons) >= 10, tally.reasons
    assert tally.slowest[0] < cpu_budget(SLOWEST_ALLOWED_S), tally.slowest[1][:200]


def test_the_seeds_are_valid_and_each_applies_to_some_state() -> None:
    cases = states()
    for seed in seeds(cases["open"]):  # type: ignore[arg-type]
        action = ACTION.validate_json(json.dumps(seed))
        later = (NOW + timedelta(minutes=5), NOW + timedelta(days=15))  # a close needs the recovery window over
        outcomes = [apply(case, action, "a-1", at, POLICY, no_pool) for case in cases.values() for at in later]
        assert any(isinstance(o, Applied) for o in outcomes), seed["action"]
