"""Every task's case, as every replica sees it: the `task`, `pool` and `outcome` records of the state topic.

Only the keeper (the worker that owns TASK_ACTIONS_TOPIC's partition, see keeper/keeper.py) writes
them: one writer, in action order. Every replica reads them, so any replica can show a task,
check an action before sending it, and know who has a task.

    task|<input topic>|<task id>       the case (case.py), JSON
    pool|<input topic>|<owner>         {"next": n}: the round-robin position of an owner pool
    outcome|<input topic>|<action id>  {"applied": bool, "reason": ..., "at": ...}: for whoever sent it

(and `cause|<input topic>|<root cause>`, the suggested root cause's counts: learning.py's CauseModel)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ..stream import StateView
from .case import Case
from .policy import TaskPolicy

OUTCOME_KEPT_S = 3600  # long enough for the CLI or Slack to learn what became of an action


@dataclass(frozen=True)
class ActionOutcome:
    applied: bool
    reason: str
    at: int
    task_id: str = ""


class Cases:
    def __init__(self, view: StateView, policy: TaskPolicy) -> None:
        self.view = view
        self.policy = policy
        self.by_id: dict[str, Case] = {}
        self.rotation: dict[str, int] = {}
        self.outcomes: dict[str, ActionOutcome] = {}
        self.changed: set[str] = set()  # task ids whose case changed since the last look (read back or saved)
        # customer id -> their tasks an answer may close or reopen (resolved once): the hot path's one lookup per answer.
        self.answerable: dict[str, set[str]] = {}
        self.unresolved: dict[str, set[str]] = {}  # customer id -> their open or acknowledged tasks (an answer joins one)
        #: Called with every case as it changes (None: gone), here or on another replica: the loop KPIs follow.
        self.watchers: list[Callable[[str, Case | None], None]] = []
        #: Cases this worker wrote since its last sync: their records coming back are echoes, older than memory.
        self.own: set[str] = set()
        view.register("task", self._task, before_sync=self.own.clear)
        view.register("pool", self._pool)
        view.register("outcome", self._outcome)

    def get(self, task_id: str) -> Case | None:
        return self.by_id.get(task_id)

    def finished(self, task_id: str) -> bool:
        """Resolved or closed (False for a task not known yet: the keeper is opening it)."""
        case = self.by_id.get(task_id)
        return case is not None and not case.unresolved

    def answerable_of(self, customer_id: str) -> list[Case]:
        """The customer's tasks that were resolved at some point: only these can await, or have taken, an answer."""
        return [self.by_id[task_id] for task_id in self.answerable.get(customer_id, ())]

    def unresolved_of(self, customer_id: str) -> list[Case]:
        return [self.by_id[task_id] for task_id in self.unresolved.get(customer_id, ())]

    # -- written by the keeper ---------------------------------------------------------------------

    def save(self, case: Case) -> None:
        self._put(case.task_id, case)
        self.own.add(case.task_id)
        self.view.publish([(self.view.key("task", case.task_id), case.model_dump_json(exclude_defaults=True).encode())])

    def assign(self, owner: str) -> str | None:
        """The member of owner pool `owner` who gets the next task; None when `owner` is not a pool."""
        pool = self.policy.owners.get(owner)
        if pool is None:
            return None
        if pool.strategy == "least_open":
            load = {member: 0 for member in pool.members}
            for case in self.by_id.values():
                if case.unresolved and case.assignee in load:
                    load[case.assignee] += 1
            return min(pool.members, key=lambda member: load[member])  # ties: the first in the pool's order
        turn = self.rotation.get(owner, 0)
        self.rotation[owner] = turn + 1
        self.view.publish([(self.view.key("pool", owner), json.dumps({"next": turn + 1}).encode())])
        return pool.members[turn % len(pool.members)]

    def record_outcome(self, action_id: str, task_id: str, applied: bool, reason: str, now: datetime) -> None:
        outcome = ActionOutcome(applied, reason, int(now.timestamp()), task_id)
        self.outcomes[action_id] = outcome
        self.view.publish([(self.view.key("outcome", action_id), json.dumps(outcome.__dict__).encode())])

    def expire(self, now: datetime, retention_s: int) -> int:
        """Tombstone action outcomes after an hour, and finished cases (resolved and not awaiting an answer, or closed)
        untouched for the retention."""
        at = int(now.timestamp())
        gone = [a for a, o in self.outcomes.items() if o.at + OUTCOME_KEPT_S < at]
        for action_id in gone:
            del self.outcomes[action_id]
            self.view.publish([(self.view.key("outcome", action_id), None)])
        old = [
            t for t, c in self.by_id.items() if not c.unresolved and not c.awaiting_answer and c.updated_at.timestamp() + retention_s < at
        ]
        for task_id in old:
            self._put(task_id, None)
            self.own.add(task_id)
            self.view.publish([(self.view.key("task", task_id), None)])
        return len(old)

    # -- read back from the state topic --------------------------------------------------------------

    def _task(self, task_id: str, value: bytes | None) -> None:
        if task_id in self.own:
            return  # our own write coming back: memory is newer
        self._put(task_id, None if value is None else Case.model_validate_json(value))

    def _put(self, task_id: str, case: Case | None) -> None:
        old = self.by_id.pop(task_id, None)
        if old is not None:
            for index in (self.answerable, self.unresolved):
                tasks = index.get(old.customer_id)
                if tasks is not None:
                    tasks.discard(task_id)
                    if not tasks:
                        del index[old.customer_id]
        if case is not None:
            self.by_id[task_id] = case
            if case.unresolved:
                self.unresolved.setdefault(case.customer_id, set()).add(task_id)
            if case.resolution is not None or case.status in ("resolved", "closed") or any(m.answer for m in case.marks):
                self.answerable.setdefault(case.customer_id, set()).add(task_id)
        self.changed.add(task_id)
        for watcher in self.watchers:
            watcher(task_id, case)

    def _pool(self, owner: str, value: bytes | None) -> None:
        if value is not None:
            self.rotation[owner] = max(self.rotation.get(owner, 0), json.loads(value)["next"])

    def _outcome(self, action_id: str, value: bytes | None) -> None:
        if value is None:
            self.outcomes.pop(action_id, None)
        else:
            self.outcomes[action_id] = ActionOutcome(**json.loads(value))
