"""Rising complaints' counts (worker/rising/counts.py): once per comment, bounded with a known error, exact across a
restore and a replay, and the history's start."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from worker.rising import KEPT, MAX_TERMS, SAMPLES, TermState, TermWindow

SIZE, BASELINE = 60, 600
NOW = 1_800_000_000 - 1_800_000_000 % 60 + 30  # mid-window


class View:
    """The StateView as TermState uses it: handlers by kind, and what is published read back at once."""

    def __init__(self) -> None:
        self.input_topic = "fb"
        self.handlers: dict[str, Any] = {}
        self.published: list[tuple[bytes, bytes | None]] = []

    def register(self, kind: str, handler: Any) -> None:
        self.handlers[kind] = handler

    def publish(self, records: Any) -> None:
        for key, value in records:
            self.published.append((key, value))
            kind, _, rest = key.decode().split("|", 2)
            self.handlers[kind](rest, value)


def test_a_comment_counts_once_per_term_and_a_live_window_keeps_forms_and_samples() -> None:
    window = TermWindow()
    window.add({"zipper": "Zipper", "zipper broke": "Zipper broke"}, "Zipper broke. zipper!", "en", live=True)
    window.add({"zipper": "zipper"}, "zipper stuck", None, live=True)
    assert window.counts == {"zipper": 2, "zipper broke": 1}
    assert window.forms["zipper"] == {"Zipper": 1, "zipper": 1}
    assert window.samples == [("Zipper broke. zipper!", "en"), ("zipper stuck", None)]
    for n in range(SAMPLES + 5):
        window.add({"late": "late"}, f"late {n}", "en", live=True)
    assert len(window.samples) == SAMPLES and window.samples[-1] == (f"late {SAMPLES + 4}", "en")
    window.settle()  # ended: only the counts stay
    assert window.forms == {} and window.samples == [] and window.counts["late"] == SAMPLES + 5
    past = TermWindow()
    past.add({"late": "late"}, "late", "en", live=False)
    assert past.forms == {} and past.samples == [] and past.to_json() == {"stamp": 0, "counts": {"late": 1}, "floor": 0}


def test_a_window_with_too_many_terms_is_pruned_and_every_true_count_stays_within_its_floor() -> None:
    rng = random.Random(22)
    window, true = TermWindow(), Counter[str]()
    frequent = [f"common{n}" for n in range(50)]
    for n in range(20_000):
        terms = {rng.choice(frequent): "x", f"rare{rng.randrange(10**6)}": "x", f"typo{n}": "x"}
        if n % 100 == 0:
            terms["zipper"] = "x"
        window.add(terms, "", None, live=False)
        true.update(terms.keys())
    assert len(window.counts) <= MAX_TERMS and window.floor > 0
    occurrences = sum(true.values())
    assert window.floor <= occurrences / (KEPT + 1)  # Misra–Gries
    for key, n in true.items():
        kept = window.counts.get(key, 0)
        assert kept <= n <= kept + window.floor, key
    assert all(key in window.counts for key in frequent)  # the frequent ones are kept: ~400 each, far above the floor


def _answers(n: int, seed: int = 5) -> list[tuple[dict[str, str], int]]:
    """(terms, timestamp): a mix over the current window and two before it, with enough words to prune them."""
    rng = random.Random(seed)
    start = NOW - NOW % SIZE
    return [
        ({f"w{rng.randrange(10**6)}": "w", f"v{rng.randrange(40)}": "v"}, start - SIZE * rng.randrange(0, 3) + rng.randrange(0, SIZE))
        for _ in range(n)
    ]


def test_a_restore_and_a_replay_count_exactly_what_one_run_counts_pruning_included() -> None:
    answers = _answers(6000)
    view = View()
    one = TermState(view)  # one uninterrupted run
    for offset, (terms, ts) in enumerate(answers):
        one.count(0, terms, "c", None, ts, offset, NOW, SIZE, BASELINE)
    one.checkpoint({0: len(answers)}, NOW, BASELINE)

    view2 = View()
    crashed = TermState(view2)  # a run that checkpoints at 2,500, counts on to 4,000 and is killed
    for offset, (terms, ts) in enumerate(answers[:4000]):
        crashed.count(0, terms, "c", None, ts, offset, NOW, SIZE, BASELINE)
        if offset == 2499:
            crashed.checkpoint({0: 2500}, NOW, BASELINE)
    restarted = TermState(View())
    for key, value in view2.published[: len(view2.published)]:  # the state topic as the crash left it
        kind, _, rest = key.decode().split("|", 2)
        restarted.view.handlers[kind](rest, value)  # type: ignore[attr-defined]
    restarted.assigned([0])
    for offset, (terms, ts) in enumerate(answers):  # replayed from the last commit (2,500) or earlier: from 0 here
        restarted.count(0, terms, "c", None, ts, offset, NOW, SIZE, BASELINE)
    restarted.checkpoint({0: len(answers)}, NOW, BASELINE)
    starts = sorted({ts - ts % SIZE for _, ts in answers})
    assert any(one.windows[SIZE, s][0].floor for s in starts), "some window was pruned"
    for start in starts:
        assert restarted.windows[SIZE, start][0].counts == one.windows[SIZE, start][0].counts
        assert restarted.windows[SIZE, start][0].floor == one.windows[SIZE, start][0].floor


def test_every_replica_sums_the_latest_partials_and_old_windows_go() -> None:
    view = View()
    state = TermState(view)
    start = NOW - NOW % SIZE
    state.count(0, {"zipper": "Zipper"}, "Zipper!", "en", start + 1, 0, NOW, SIZE, BASELINE)
    state.count(1, {"zipper": "zipper"}, "zipper", "en", start + 2, 0, NOW, SIZE, BASELINE)
    state.checkpoint({0: 1, 1: 1}, NOW, BASELINE)
    state.count(1, {"zipper": "zipper"}, "zipper again", "en", start + 3, 1, NOW, SIZE, BASELINE)
    state.checkpoint({0: 1, 1: 2}, NOW, BASELINE)
    state.checkpoint({0: 1, 1: 2}, NOW, BASELINE)  # nothing new: nothing published, nothing added
    totals = state.totals(SIZE, start, details=True)
    assert totals.counts == {"zipper": 3} and totals.forms == {"zipper": {"Zipper": 1, "zipper": 2}}
    assert [comment for comment, _ in totals.samples] == ["Zipper!", "zipper", "zipper again"]

    old = start - BASELINE - SIZE  # beyond the baseline and its slack: not kept, but history all the same
    state.count(0, {"late": "late"}, "late", "en", old - 3600, 1, NOW, SIZE, BASELINE)
    state.checkpoint({0: 2}, NOW, BASELINE)
    assert state.history(SIZE) == old and (SIZE, old - 3600) not in state.windows
    later = NOW + BASELINE + 2 * SIZE  # time passes: the current window's counts become too old, and go
    state.checkpoint({0: 2, 1: 2}, later, BASELINE)
    assert (SIZE, start) not in state.windows and state.history(SIZE) == later - later % SIZE - BASELINE - SIZE
    assert (b"terms|fb|0|60|%d" % start, None) in view.published
