"""Closing the loop in-process: the survey request, the customer's answer closing or reopening, no answer in time."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.tasks.test_keeper import ALICE, NOW, POLICY, act, new_case, no_pool, status_after
from worker.tasks import (
    ACTION,
    Applied,
    Case,
    FollowupAnswer,
    Refused,
    answered_tasks,
    apply,
    survey_request,
)

RESOLVE = {"root_cause": "shipping-delay", "resolution": "Re-sent the parcel"}
RESOLVED_AT = NOW


def resolved(**changes: object) -> Case:
    return status_after(new_case(), ("acknowledge", {}), ("resolve", RESOLVE)).model_copy(update=changes)


def reply(case: Case, event_id: str, score: int, after: timedelta, survey: str = "csat") -> Applied | Refused | None:
    answer = FollowupAnswer(
        event_id=event_id,
        occurred_at=RESOLVED_AT + after,
        survey=survey,
        score=score,  # type: ignore[arg-type]
        unhappy=score <= 3 if survey == "csat" else score <= 6,
        comment="thanks" if score > 3 else "still broken",
    )
    action = ACTION.validate_python(
        {"action": "answer", "task_id": case.task_id, "actor": {"source": "worker"}, "answer": answer.model_dump()}
    )
    return apply(case, action, f"answer:{case.task_id}:{event_id}", RESOLVED_AT + after + timedelta(seconds=1), POLICY, no_pool)


def close(case: Case, at: datetime, action_id: str = "close-1") -> Applied | Refused | None:
    action = ACTION.validate_python({"action": "close", "task_id": case.task_id, "actor": {"source": "worker"}})
    return apply(case, action, action_id, at, POLICY, no_pool)


def test_a_resolution_asks_the_customer_again_with_the_rules_survey_until_the_window_ends() -> None:
    case = resolved()
    request = survey_request(case)
    assert request is not None and request.type == "survey.requested" and request.reason == "followup"
    assert (request.task_id, request.customer, request.survey) == (case.task_id, "c-1", "csat")
    assert request.requested_at == RESOLVED_AT and request.answer_by == RESOLVED_AT + timedelta(days=14)
    assert survey_request(case) == request, "the same request after a crash: consumers can deduplicate by id"
    assert survey_request(resolved(recheck="none")) is None
    assert survey_request(new_case()) is None, "only a resolved task asks"


def test_a_happy_answer_in_the_window_closes_the_task_as_recovered_and_once() -> None:
    case = resolved()
    result = reply(case, "e-9", 5, timedelta(days=2))
    assert isinstance(result, Applied) and result.record.type == "followup.closed"
    assert result.record.outcome == "recovered" and result.record.answer.event_id == "e-9"
    closed = result.case
    assert closed.status == "closed" and closed.outcome == "recovered" and not closed.awaiting_answer
    assert [m.kind for m in closed.marks] == ["opened", "acknowledged", "resolved", "closed"]
    assert reply(closed, "e-9", 5, timedelta(days=2)) is None, "the same answer again (a replay): nothing"
    again = reply(closed, "e-10", 4, timedelta(days=3))
    assert isinstance(again, Refused) and "already closed (recovered)" in again.reason
    assert closed.due_timer(RESOLVED_AT + timedelta(days=30)) is None, "closed: no timer"


def test_an_unhappy_answer_reopens_the_task_and_restarts_its_timers() -> None:
    case = resolved()
    result = reply(case, "e-9", 2, timedelta(hours=5))
    assert isinstance(result, Applied) and result.record.type == "followup.reopened"
    assert result.record.reason == "still_unhappy" and result.record.answer.score == 2
    reopened = result.case
    assert reopened.status == "open" and reopened.reopened == 1 and reopened.answered_by("e-9")
    answered_at = RESOLVED_AT + timedelta(hours=5, seconds=1)
    assert reopened.sla.acknowledge_by == answered_at + timedelta(minutes=30) and reopened.sla.resolve_by == answered_at + timedelta(
        hours=4
    )
    assert reopened.due_timer(answered_at + timedelta(minutes=31)) == "not_acknowledged"
    # Resolved again: asked again; a happy answer now closes it.
    resolved_again = act(reopened, "resolve", "resolve-2", at=answered_at + timedelta(hours=1), **RESOLVE)
    assert isinstance(resolved_again, Applied)
    again = resolved_again.case
    assert again.awaiting_answer
    assert (r := survey_request(again)) is not None and r.id != survey_request(case).id  # type: ignore[union-attr]
    closed = reply(again, "e-11", 5, timedelta(hours=7))
    assert isinstance(closed, Applied) and closed.case.outcome == "recovered"


def test_an_unhappy_answer_after_a_recovery_within_the_window_reopens_it() -> None:
    recovered = reply(resolved(), "e-9", 5, timedelta(days=1))
    assert isinstance(recovered, Applied)
    result = reply(recovered.case, "e-10", 1, timedelta(days=2))
    assert isinstance(result, Applied) and result.record.type == "followup.reopened" and result.case.outcome is None


def test_an_answer_outside_the_window_or_for_a_task_never_resolved_closes_nothing() -> None:
    case = resolved()
    before = reply(case, "e-8", 5, timedelta(seconds=-5))
    assert isinstance(before, Refused) and "outside the recovery window" in before.reason
    late = reply(case, "e-9", 5, timedelta(days=15))
    assert isinstance(late, Refused) and "outside the recovery window" in late.reason
    open_ = reply(new_case(), "e-10", 5, timedelta(hours=1))
    assert isinstance(open_, Refused) and "it is open and awaits no answer" in open_.reason
    silent = reply(resolved(recheck="none"), "e-11", 5, timedelta(hours=1))
    assert isinstance(silent, Refused)


def test_no_answer_in_the_window_closes_it_as_no_response_when_the_timer_runs_out() -> None:
    case = resolved()
    end = RESOLVED_AT + timedelta(days=14)
    assert case.next_due() == end and case.due_timer(end - timedelta(seconds=1)) is None and case.due_timer(end) == "no_response"
    early = close(case, end - timedelta(minutes=1))
    assert isinstance(early, Refused) and "awaits an answer until" in early.reason
    result = close(case, end)
    assert isinstance(result, Applied) and result.record.outcome == "no_response" and result.record.answer is None
    assert result.case.status == "closed" and result.case.next_due() is None
    assert close(result.case, end + timedelta(days=1)) is None, "asked again (the keeper moved): applied once"
    refused = close(result.case, end + timedelta(days=1), "close-2")
    assert isinstance(refused, Refused) and "it awaits no answer" in refused.reason


def test_only_the_worker_answers_or_closes_and_a_person_may_reopen_a_closed_task() -> None:
    case = resolved()
    for action in (
        {"action": "close"},
        {"action": "answer", "answer": {"event_id": "e", "occurred_at": NOW.isoformat(), "survey": "csat", "score": 5, "unhappy": False}},
    ):
        try:
            ACTION.validate_python(action | {"task_id": case.task_id, "actor": ALICE})
        except ValueError as err:
            assert "only the worker may" in str(err)
        else:
            raise AssertionError(f"{action['action']} by a person was accepted")
    closed = close(case, RESOLVED_AT + timedelta(days=14))
    assert isinstance(closed, Applied)
    reopened = act(closed.case, "reopen", "r-1", at=RESOLVED_AT + timedelta(days=20), reason="they called again")
    assert isinstance(reopened, Applied) and reopened.case.status == "open"


def test_which_tasks_an_answer_answers_prefers_the_task_it_names() -> None:
    first = resolved()
    second = resolved(task_id="task-second")
    still_open = new_case().model_copy(update={"task_id": "task-open"})
    at = RESOLVED_AT + timedelta(days=1)
    everyone = [first, second, still_open]
    assert {c.task_id for c in answered_tasks(everyone, "e-9", at, False, None)} == {first.task_id, "task-second"}
    assert [c.task_id for c in answered_tasks(everyone, "e-9", at, False, "task-second")] == ["task-second"]
    assert answered_tasks(everyone, "e-9", RESOLVED_AT - timedelta(hours=1), False, None) == []
    assert answered_tasks([still_open], "e-9", at, True, None) == [], "a task never resolved is never answered"
    recovered = reply(first, "e-9", 5, timedelta(days=1))
    assert isinstance(recovered, Applied)
    assert answered_tasks([recovered.case], "e-9", at, False, None) == [recovered.case], "a replayed answer goes to the keeper again"
    assert answered_tasks([recovered.case], "e-10", at, False, None) == [], "a happy answer to a recovered task: nothing to do"
    assert answered_tasks([recovered.case], "e-10", at, True, None) == [recovered.case], "an unhappy one reopens it"
