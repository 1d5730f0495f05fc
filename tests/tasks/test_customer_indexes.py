"""The per-customer lookups the hot path relies on stay small and right.

Every answer of a customer with a task that was ever resolved asks which of those tasks it
answers; every unhappy match asks for the customer's unresolved tasks and whether it was
already replied in a thread. A customer with hundreds of open tasks must not make each of
their answers walk all of them (bench/README.md: the cost of an alert grew with the run).
"""

from __future__ import annotations

from tests.metrics.test_windows_state import Fake
from tests.tasks.test_keeper import POLICY, RESOLVE, act, new_case, status_after
from worker.delivery import Form, Post, Posts, PostState, alert_slot, answer_slot, change_slot
from worker.stream.state import StateView
from worker.tasks import Applied, Cases


def cases() -> Cases:
    return Cases(StateView("state", "feedback", Fake(), Fake()), POLICY)


def test_only_tasks_resolved_once_are_answerable_and_only_open_ones_unresolved() -> None:
    table = cases()
    opened = new_case()
    table.save(opened)
    customer = opened.customer_id
    assert table.unresolved_of(customer) == [opened] and table.answerable_of(customer) == []
    assert customer not in table.answerable  # the hot path's check: no answer of theirs looks further

    resolved = status_after(opened, ("resolve", RESOLVE))
    table.save(resolved)
    assert table.unresolved_of(customer) == [] and table.answerable_of(customer) == [resolved]

    reopened = act(resolved, "reopen", "reopen-1", reason="they wrote again")
    assert isinstance(reopened, Applied)
    reopened = reopened.case
    table.save(reopened)
    assert table.unresolved_of(customer) == [reopened]

    table._put(opened.task_id, None)  # expired
    assert customer not in table.answerable and customer not in table.unresolved


def test_replied_lists_the_tasks_an_event_was_replied_under_and_forgets_expired_records() -> None:
    posts = Posts(StateView("state", "feedback", Fake(), Fake()))
    posts.put(answer_slot("task-a", "e-9"), Post(PostState.OWED, Form.REPLY, "#cx", 0, 100, thread_ts="1.0"))
    posts.put(answer_slot("task-b", "e-9"), Post(PostState.POSTED, Form.REPLY, "#cx", 0, 100, "C1", "2.0", thread_ts="1.5"))
    posts.put(alert_slot("task-c"), Post(PostState.POSTED, Form.ALONE, "#cx", 0, 100, "C1", "3.0"))
    posts.put(change_slot("task-a", "1"), Post(PostState.POSTED, Form.REPLY, "#cx", 0, 100, thread_ts="1.0"))  # not an answer's reply
    assert sorted(posts.replied("e-9")) == ["task-a", "task-b"] and posts.replied("e-1") == []
    posts._record(answer_slot("task-a", "e-9").key, None)  # a tombstone read back
    assert posts.replied("e-9") == ["task-b"]
    assert posts.expire(10_000, 60, {0}) == 3 and posts.replied("e-9") == []
