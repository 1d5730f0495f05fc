"""Loop KPIs per window: tasks acknowledged and resolved, how fast, within SLA or not, and customers recovered.

Fed from the follow-up tasks, not from events: every replica keeps every task's case (from the
state topic), and tasks/kpis.py turns a case's marks into LoopEntry values. Each entry is counted
by the time its record happened (`at`) into one pane per step and dimension, like the responses
(partials.py), and a window sums its panes (`tally`), so figuring a window reads only the entries
dated in it, never every case.

Exact across crashes and replicas because the source is: a case in the compacted state topic
holds all its marks, and `track` *replaces* a task's entries, so a case read twice, or again
after a restart, counts once. Nothing here is published: every replica computes the same.
A task whose case is deleted keeps its entries until their panes expire: old windows keep their
counts (cases are kept longer than the largest window, `alert_record_retention`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from .partials import GRACE_S, PaneKey
from .schema import LoopFigures, Percentiles
from .windows import MetricsConfig

Kind = Literal["opened", "acknowledged", "escalated", "resolved", "reopened", "closed"]
STILL_UNHAPPY = "still_unhappy"  # the reason of a reopen by the customer's follow-up answer


@dataclass(frozen=True, slots=True)
class LoopEntry:
    """One lifecycle record of a task, as the KPIs count it (neutral: metrics knows nothing of tasks)."""

    kind: Kind
    at: int  # when it happened, Unix seconds
    task_id: str
    customer: str
    value: float | None = None  # the customer's monthly value
    seconds: float | None = None  # acknowledged/resolved: time since the task was (re)opened
    within_sla: bool | None = None  # acknowledged/resolved: by its deadline (or there was none)
    detail: str | None = None  # resolved: the root cause; reopened: the reason; closed: the outcome; escalated: the reason


@dataclass(slots=True)
class LoopTally:
    """The entries of a window, summed. Lists and sets, not sketches: the percentiles and distinct counts are exact."""

    opened: int = 0
    acknowledged: int = 0
    resolved: int = 0
    reopened: int = 0
    still_unhappy: int = 0
    escalated: int = 0
    closed_recovered: int = 0
    closed_no_response: int = 0
    acknowledged_within_sla: int = 0
    resolved_within_sla: int = 0
    to_acknowledge: list[float] = field(default_factory=list)
    to_resolve: list[float] = field(default_factory=list)
    recovered: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # customer -> (at, value) of the latest
    causes: dict[str, set[str]] = field(default_factory=dict)  # root cause -> ids of the tasks resolved with it

    def add(self, entry: LoopEntry) -> None:
        kind = entry.kind
        if kind == "opened":
            self.opened += 1
        elif kind == "acknowledged":
            self.acknowledged += 1
            self.acknowledged_within_sla += entry.within_sla is not False
            if entry.seconds is not None:
                self.to_acknowledge.append(entry.seconds)
        elif kind == "resolved":
            self.resolved += 1
            self.resolved_within_sla += entry.within_sla is not False
            if entry.seconds is not None:
                self.to_resolve.append(entry.seconds)
            if entry.detail:
                self.causes.setdefault(entry.detail, set()).add(entry.task_id)
        elif kind == "reopened":
            self.reopened += 1
            self.still_unhappy += entry.detail == STILL_UNHAPPY
        elif kind == "escalated":
            self.escalated += 1
        elif entry.detail == "recovered":
            self.closed_recovered += 1
            seen = self.recovered.get(entry.customer)
            if seen is None or (entry.at, _num(entry.value)) > (seen[0], _num(seen[1])):  # order never matters
                self.recovered[entry.customer] = (entry.at, entry.value)
        elif entry.detail == "no_response":
            self.closed_no_response += 1


class LoopBook:
    """Every task's entries, by pane: what the emitter sums into a window's `loop` and `root_causes`."""

    def __init__(self, config: MetricsConfig) -> None:
        self.lateness = int(config.lateness.total_seconds())
        self.steps = sorted(config.steps().items())  # [(step, largest size using it)]
        self.step_of = {w.size_s: w.step_s for w in config.windows}
        self.paths = set(config.dimensions)
        self.panes: dict[PaneKey, dict[str, tuple[LoopEntry, ...]]] = {}  # pane -> task id -> its entries there
        self.placed: dict[str, dict[PaneKey, tuple[LoopEntry, ...]]] = {}  # task id -> the same, by task
        self.changed: set[PaneKey] = set()  # consumed by the emitter, like MetricState.changed
        self.now = 0  # the last `expire`: entries in panes expired by then are not placed again

    def track(self, task_id: str, dims: list[str], entries: list[LoopEntry]) -> None:
        """The task's entries are now these (replacing, never adding); panes whose part changed are marked changed.

        `dims`: the task's dimension values as `path=value`; those of unconfigured paths are ignored."""
        new = self._place(dims, entries)
        old = self.placed.get(task_id, {})
        for key in old.keys() | new.keys():
            mine = new.get(key)
            if old.get(key) == mine:
                continue
            pane = self.panes.setdefault(key, {})
            if mine:
                pane[task_id] = mine
            else:
                del pane[task_id]
                if not pane:
                    del self.panes[key]
            self.changed.add(key)
        if new:
            self.placed[task_id] = new
        else:
            self.placed.pop(task_id, None)

    def forget(self, task_id: str) -> None:
        """Take a task's entries out of every window (not for a deleted case: see the module's docstring)."""
        self.track(task_id, [], [])

    def tally(self, size: int, start: int, dim: str) -> LoopTally:
        """The entries of the window [start, start + size) in dimension `dim` ("" for the overall figure)."""
        step = self.step_of[size]
        total = LoopTally()
        for pane_start in range(start, start + size, step):
            for entries in self.panes.get((step, pane_start, dim), {}).values():
                for entry in entries:
                    total.add(entry)
        return total

    def expire(self, now: int) -> None:
        """Drop the panes whose last window closed more than GRACE_S ago (their finals are out)."""
        self.now = max(self.now, now)
        sizes = dict(self.steps)
        for key in [k for k in self.panes if self._expired(k[1], sizes.get(k[0], k[0]))]:
            for task_id in self.panes.pop(key):
                placed = self.placed[task_id]
                del placed[key]
                if not placed:
                    del self.placed[task_id]
            self.changed.discard(key)

    def _expired(self, start: int, size: int) -> bool:
        return self.now > start + size + self.lateness + GRACE_S

    def _place(self, dims: list[str], entries: list[LoopEntry]) -> dict[PaneKey, tuple[LoopEntry, ...]]:
        where = [""] + [d for d in dict.fromkeys(dims) if d.partition("=")[0] in self.paths]
        placed: dict[PaneKey, list[LoopEntry]] = {}
        for entry in entries:
            for step, size in self.steps:
                start = entry.at - entry.at % step
                if not self._expired(start, size):
                    for dim in where:
                        placed.setdefault((step, start, dim), []).append(entry)
        return {key: tuple(found) for key, found in placed.items()}


def nearest_rank(values: list[float], percent: int) -> float | None:
    """The smallest value with at least `percent` % of the values at or below it; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-percent * len(ordered) // 100)  # ceil, in integers: 0.9 x 10 must be 9, not 9.000000000000002
    return ordered[max(rank, 1) - 1]


def loop_figures(tally: LoopTally) -> dict[str, Any]:
    """The snapshot's `loop` and `root_causes`."""
    decided = tally.closed_recovered + tally.still_unhappy
    loop = LoopFigures(
        opened=tally.opened,
        acknowledged=tally.acknowledged,
        resolved=tally.resolved,
        reopened=tally.reopened,
        still_unhappy=tally.still_unhappy,
        escalated=tally.escalated,
        closed_recovered=tally.closed_recovered,
        closed_no_response=tally.closed_no_response,
        acknowledged_within_sla=tally.acknowledged_within_sla,
        resolved_within_sla=tally.resolved_within_sla,
        time_to_acknowledge=_percentiles(tally.to_acknowledge),
        time_to_resolve=_percentiles(tally.to_resolve),
        recovery_rate=_round(tally.closed_recovered / decided * 100 if decided else None),
        # fsum: exact, so the figure does not depend on the order entries were summed in
        revenue_recovered=_round(math.fsum(value or 0.0 for _, value in tally.recovered.values())) or 0.0,
    )
    causes = {cause: len(tasks) for cause, tasks in sorted(tally.causes.items(), key=lambda item: (-len(item[1]), item[0]))}
    return {"loop": loop, "root_causes": causes}


def _percentiles(values: list[float]) -> Percentiles:
    return Percentiles(p50=_round(nearest_rank(values, 50)), p90=_round(nearest_rank(values, 90)))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _num(value: float | None) -> float:
    return -1.0 if value is None else value
