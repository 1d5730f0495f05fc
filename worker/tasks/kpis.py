"""A task's case as loop-KPI entries (metrics/loop.py), and the watcher that keeps a LoopBook current.

The KPIs are counted from the case's marks, the moments of its lifecycle (case.py): every replica
holds every case, so every replica counts the same, and a case seen again counts once
(`LoopBook.track` replaces). Times to acknowledge and to resolve run from the latest opened or
reopened mark before them, in business time when the SLA calendar is set.
"""

from __future__ import annotations

from collections.abc import Callable

from ..metrics import LoopBook, LoopEntry
from .case import Case
from .policy import SlaCalendar


def loop_entries(case: Case, calendar: SlaCalendar | None) -> list[LoopEntry]:
    """One entry per mark; `detail` as the mark has it (the reopen reason `still_unhappy` is what metrics counts)."""
    entries: list[LoopEntry] = []
    since = case.opened_at
    for mark in case.marks:
        seconds: float | None = None
        within: bool | None = None
        if mark.kind in ("opened", "reopened"):
            since = mark.at
        elif mark.kind in ("acknowledged", "resolved"):
            spent = calendar.between(since, mark.at) if calendar is not None else mark.at - since
            seconds = max(spent.total_seconds(), 0.0)
            within = mark.due is None or mark.at <= mark.due
        entries.append(
            LoopEntry(
                kind=mark.kind,
                at=int(mark.at.timestamp()),
                task_id=case.task_id,
                customer=case.customer_id,
                value=case.monthly_value,
                seconds=seconds,
                within_sla=within,
                detail=mark.detail,
            )
        )
    return entries


def follow_cases(book: LoopBook, calendar: SlaCalendar | None) -> Callable[[str, Case | None], None]:
    """A `Cases.watchers` callback: every case, as it changes here or on another replica, tracked in `book`."""

    def watch(task_id: str, case: Case | None) -> None:
        # A deleted case (None) is finished and old: its entries stay in the windows that counted them, until they expire.
        if case is not None:
            book.track(task_id, case.dims, loop_entries(case, calendar))

    return watch
