"""The task lifecycle in-process: every row of the transition table, allowed and refused, and duplicates applied once.

The same rows go through the actions topic and the CLI in tests/e2e/test_task_lifecycle.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.metrics.test_windows_state import Fake
from worker.events import FeedbackEvent
from worker.stream.state import StateView
from worker.tasks import (
    ACTION,
    Applied,
    Case,
    Cases,
    FollowupSpec,
    FollowUpUpdate,
    OwnerPool,
    Refused,
    TaskPolicy,
    apply,
    open_task,
)

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
POLICY = TaskPolicy(owners={"cx-oncall": OwnerPool(members=["U01AAA", "U02BBB", "U03CCC"])})
ALICE = {"source": "slack", "id": "U01AAA", "name": "Alice"}
EVENT = FeedbackEvent.model_validate(
    {
        "event_id": "e-1",
        "occurred_at": "2026-11-30T09:59:00+00:00",
        "survey": "nps",
        "score": 2,
        "customer": {"id": "c-1", "name": "Purrfect Prints", "monthly_value": 120.0},
    }
)


def no_pool(owner: str) -> str | None:
    return None


def new_case(owner: str = "cx-team") -> Case:
    spec = FollowupSpec(owner=owner, due_in=timedelta(hours=4), acknowledge_within=timedelta(minutes=30))
    task = open_task(EVENT, "nps-detractor", ["nps-detractor"], "high", spec, NOW)
    action = ACTION.validate_python(
        {
            "action": "open",
            "task_id": task.task_id,
            "actor": {"source": "worker"},
            "task": task.model_dump(),
            "acknowledge_within_s": 1800,
            "due_in_s": 14400,
            "channel": "#cx-alerts",
        }
    )
    applied = apply(None, action, f"open:{task.task_id}", NOW, POLICY, no_pool)
    assert isinstance(applied, Applied) and applied.record.type == "followup.opened"
    return applied.case


def act(case: Case | None, action: str, action_id: str = "a-1", at: datetime = NOW, **fields: object) -> Applied | Refused | None:
    task_id = case.task_id if case is not None else "task-unknown"
    parsed = ACTION.validate_python({"action": action, "task_id": task_id, "actor": ALICE} | fields)
    return apply(case, parsed, action_id, at, POLICY, no_pool)


def status_after(case: Case, *steps: tuple[str, dict]) -> Case:
    for n, (action, fields) in enumerate(steps):
        result = act(case, action, f"setup-{n}", **fields)
        assert isinstance(result, Applied), result
        case = result.case
    return case


RESOLVE = {"root_cause": "shipping-delay", "resolution": "Re-sent the order", "customer_contacted": True}
OPEN, ACKNOWLEDGED, RESOLVED = [], [("acknowledge", {})], [("resolve", RESOLVE)]


@pytest.mark.parametrize(
    ("before", "action", "fields", "record"),
    [
        (OPEN, "acknowledge", {}, "followup.acknowledged"),
        (OPEN, "assign", {"assignee": "U02BBB"}, "followup.assigned"),
        (ACKNOWLEDGED, "assign", {"assignee": "U02BBB"}, "followup.assigned"),
        (OPEN, "step", {"step": "hear", "note": "called them"}, "followup.step_done"),
        (ACKNOWLEDGED, "step", {"step": "apologize"}, "followup.step_done"),
        (OPEN, "resolve", RESOLVE, "followup.resolved"),
        (ACKNOWLEDGED, "resolve", RESOLVE, "followup.resolved"),
        (RESOLVED, "reopen", {"reason": "the customer wrote again"}, "followup.reopened"),
    ],
)
def test_every_allowed_transition_publishes_its_record_and_moves_the_case(before, action, fields, record) -> None:
    case = status_after(new_case(), *before)
    result = act(case, action, **fields)
    assert isinstance(result, Applied)
    assert result.record.type == record and result.record.task_id == case.task_id
    assert result.record.actor.name == "Alice" and result.record.at == NOW
    expected = {"acknowledge": "acknowledged", "resolve": "resolved", "reopen": "open"}.get(action, case.status)
    assert result.case.status == expected


@pytest.mark.parametrize(
    ("before", "action", "fields", "reason"),
    [
        (
            ACKNOWLEDGED,
            "acknowledge",
            {},
            "cannot acknowledge task {id}: it is acknowledged by Alice; only an open task can be acknowledged",
        ),
        (RESOLVED, "acknowledge", {}, "cannot acknowledge task {id}: it is resolved; only an open task can be acknowledged"),
        (RESOLVED, "assign", {"assignee": "U02BBB"}, "cannot assign task {id}: it is resolved (reopen it first)"),
        (OPEN, "assign", {"assignee": None}, None),  # filled below: assigning to the current assignee
        (RESOLVED, "step", {"step": "hear"}, "cannot tick a step of task {id}: it is resolved (reopen it first)"),
        (OPEN, "resolve", {"resolution": "done"}, "cannot resolve task {id} (open): a root cause is required (one of: "),
        (
            OPEN,
            "resolve",
            {"root_cause": "bad-weather", "resolution": "x"},
            "cannot resolve task {id} (open): root cause 'bad-weather' is not in the taxonomy (one of: ",
        ),
        (
            ACKNOWLEDGED,
            "resolve",
            {"root_cause": "billing-error", "resolution": "  "},
            "cannot resolve task {id} (acknowledged): say what was done",
        ),
        (RESOLVED, "resolve", RESOLVE, "cannot resolve task {id}: it is already resolved (shipping-delay, by Alice)"),
        (OPEN, "reopen", {"reason": "x"}, "cannot reopen task {id}: it is open; only a resolved or closed task can be reopened"),
        (
            ACKNOWLEDGED,
            "reopen",
            {"reason": "x"},
            "cannot reopen task {id}: it is acknowledged; only a resolved or closed task can be reopened",
        ),
    ],
)
def test_every_refused_transition_names_the_task_its_status_and_why(before, action, fields, reason) -> None:
    case = status_after(new_case(), *before)
    if action == "assign" and fields["assignee"] is None:
        case = status_after(case, ("assign", {"assignee": "U02BBB"}))
        fields, reason = {"assignee": "U02BBB"}, "task {id} is already assigned to U02BBB"
    result = act(case, action, **fields)
    assert isinstance(result, Refused)
    assert result.reason.startswith(reason.format(id=case.task_id)), result.reason


def test_an_unknown_task_is_refused_by_name() -> None:
    result = act(None, "acknowledge")
    assert isinstance(result, Refused) and result.reason == "unknown task 'task-unknown' (see `feedback-worker task list`)"


def test_the_same_action_twice_is_applied_once_and_two_clicks_at_once_once_as_well() -> None:
    case = new_case()
    first = act(case, "acknowledge", "click-1")
    assert isinstance(first, Applied)
    assert act(first.case, "acknowledge", "click-1") is None  # a retried CLI call, a redelivered record: nothing
    second = act(first.case, "acknowledge", "click-2")  # someone else clicked at the same moment: applied one after the other
    assert isinstance(second, Refused) and "it is acknowledged by Alice" in second.reason


def test_only_the_worker_may_open_update_or_escalate() -> None:
    with pytest.raises(ValueError, match="only the worker may escalate"):
        ACTION.validate_python({"action": "escalate", "task_id": "t", "actor": ALICE, "reason": "overdue"})


def test_a_step_can_be_ticked_and_unticked_and_answers_count_up() -> None:
    case = status_after(new_case(), ("step", {"step": "hear"}), ("step", {"step": "empathize"}), ("step", {"step": "hear", "done": False}))
    assert case.steps == {"hear": False, "empathize": True}
    update = FollowUpUpdate(
        task_id=case.task_id,
        event_id="e-2",
        rule_id="nps-detractor",
        matched_rules=["nps-detractor"],
        updated_at=NOW,
        answers_in_episode=2,
        customer=EVENT.customer,
        survey="nps",
        score=1,
        comment=None,
        at=NOW,
    )
    result = apply(
        case,
        ACTION.validate_python({"action": "update", "task_id": case.task_id, "actor": {"source": "worker"}, "update": update.model_dump()}),
        "u-1",
        NOW,
        POLICY,
        no_pool,
    )
    assert isinstance(result, Applied) and result.case.answers == 2 and result.record.type == "followup.updated"


def test_an_escalation_asked_before_an_acknowledgement_applied_after_it_is_refused() -> None:
    """The keeper asks when the timer runs out, from what it has applied so far; an acknowledgement sent in time may
    already be ahead of it in the actions topic (seen after a keeper's kill -9: acknowledged tasks escalated to leads)."""
    acknowledged = status_after(new_case(), ("acknowledge", {}))
    late = ACTION.validate_python(
        {"action": "escalate", "task_id": acknowledged.task_id, "actor": {"source": "worker"}, "reason": "not_acknowledged"}
    )
    refused = apply(acknowledged, late, "esc-1", NOW + timedelta(minutes=31), POLICY, no_pool)
    assert isinstance(refused, Refused) and "acknowledged before its escalation" in refused.reason
    overdue = late.model_copy(update={"reason": "overdue"})  # the other timer still runs while it is unresolved
    assert isinstance(apply(acknowledged, overdue, "esc-2", NOW + timedelta(hours=5), POLICY, no_pool), Applied)


def test_timers_fall_due_once_per_reason_and_restart_on_a_reopen() -> None:
    case = new_case()
    assert case.due_timer(NOW + timedelta(minutes=29)) is None
    assert case.due_timer(NOW + timedelta(minutes=31)) == "not_acknowledged"
    escalated = apply(
        case,
        ACTION.validate_python(
            {"action": "escalate", "task_id": case.task_id, "actor": {"source": "worker"}, "reason": "not_acknowledged"}
        ),
        "esc-1",
        NOW,
        POLICY,
        no_pool,
    )
    assert isinstance(escalated, Applied)
    case = escalated.case
    assert case.due_timer(NOW + timedelta(hours=1)) is None  # escalated once for that reason
    assert case.due_timer(NOW + timedelta(hours=5)) == "overdue"
    acknowledged = status_after(new_case(), ("acknowledge", {}))
    assert acknowledged.due_timer(NOW + timedelta(hours=1)) is None  # acknowledged: that timer stopped
    resolved = status_after(new_case(), ("resolve", RESOLVE))
    assert resolved.due_timer(NOW + timedelta(days=9)) is None  # resolved: no timer at all
    reopened = act(resolved, "reopen", "r-1", at=NOW + timedelta(hours=6), reason="still broken")
    assert isinstance(reopened, Applied)
    assert reopened.case.sla.resolve_by == NOW + timedelta(hours=10)  # restarted from the reopen
    assert reopened.case.due_timer(NOW + timedelta(hours=6, minutes=31)) == "not_acknowledged"


def cases_with(members: list[str], strategy: str) -> Cases:
    policy = TaskPolicy(owners={"cx-oncall": OwnerPool(members=members, strategy=strategy)})
    return Cases(StateView("state", "feedback", Fake(), Fake()), policy)


def test_round_robin_gives_each_member_a_task_in_turn_and_the_rotation_survives_a_restart() -> None:
    cases = cases_with(["U01AAA", "U02BBB", "U03CCC"], "round_robin")
    assert [cases.assign("cx-oncall") for _ in range(4)] == ["U01AAA", "U02BBB", "U03CCC", "U01AAA"]
    assert cases.assign("cx-team") is None  # not a pool
    restarted = cases_with(["U01AAA", "U02BBB", "U03CCC"], "round_robin")
    for _, key, value in cases.view.producer.sent:  # what the state topic holds
        restarted.view._apply(key.decode(), value)
    assert restarted.assign("cx-oncall") == "U02BBB"


def test_least_open_picks_the_member_with_the_fewest_unresolved_tasks() -> None:
    cases = cases_with(["U01AAA", "U02BBB", "U03CCC"], "least_open")
    for n, (member, status) in enumerate(
        [("U01AAA", "open"), ("U01AAA", "acknowledged"), ("U02BBB", "open"), ("U03CCC", "resolved"), ("U03CCC", "resolved")]
    ):
        cases.save(new_case().model_copy(update={"task_id": f"t-{n}", "assignee": member, "status": status}))
    assert cases.assign("cx-oncall") == "U03CCC"  # two resolved tasks count for nothing
    cases.save(new_case().model_copy(update={"task_id": "t-9", "assignee": "U03CCC"}))
    assert cases.assign("cx-oncall") == "U02BBB"  # ties go to the first in the pool's order: 1, 1, 2 → U02BBB


def test_a_pool_member_that_is_not_a_slack_user_id_is_refused() -> None:
    with pytest.raises(ValueError, match="'alice' is not a Slack user id"):
        OwnerPool(members=["alice"])


@pytest.mark.parametrize(
    ("before", "action", "fields"),
    [
        (OPEN, "acknowledge", {}),
        (OPEN, "step", {"step": "hear", "note": "called them"}),
        (ACKNOWLEDGED, "resolve", RESOLVE),
        (RESOLVED, "reopen", {"reason": "the customer wrote again"}),
    ],
)
def test_a_record_published_again_after_a_crash_has_the_same_id(before, action, fields) -> None:
    """The keeper publishes a lifecycle record, then dies before its state and offset are saved: the next keeper
    applies the same action to the case as it was and publishes the record again, later. Consumers of
    FOLLOWUP_TOPIC dedupe by `id` (docs/tasks.md), so it must be the same, whatever the time."""
    case = status_after(new_case(), *before)
    first = act(case, action, "offset:41", at=NOW, **fields)
    again = act(case, action, "offset:41", at=NOW + timedelta(minutes=3), **fields)
    assert isinstance(first, Applied) and isinstance(again, Applied)
    assert first.record.id == again.record.id and first.record.at != again.record.at
    other = act(case, action, "offset:42", at=NOW, **fields)
    assert isinstance(other, Applied) and other.record.id != first.record.id, "another action gets another id"
