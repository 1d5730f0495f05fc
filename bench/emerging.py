"""What counting the terms of rising complaints costs (issue 22): CPU per commented unhappy answer, and memory.

The comments are made as bench/themes.py makes them: one or two customer sentences of one language (the labelled
comments of tests/themes/comments.py), mixed as a European shop's would be, a third with an order number, some
with a brand, 2 % of the words with a typo (each a spelling never seen before: a new term).

    count     what the loop adds for an unhappy answer with a comment, given its tagging (the loop tags every
              commented answer anyway, for themes and metrics): its terms (themes.term_forms: stems and two-stem
              phrases, stop words out), once per comment, counted into the window of its partition
              (rising.TermState.count), and the checkpoint's publishing of the changed windows, once per 1,000
    memory    --comments comments (default 1,000,000) spread over a 28-day baseline and the current day, three
              partitions, published every 10,000 answers into a state view that reads them back, as every
              replica holds them: the peak RSS of the process, and the distinct terms held

Usage: .venv/bin/python bench/emerging.py [--comments 1000000] [--timed 50000] [--seed 22]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.themes.comments import HELD_OUT, WRITTEN  # noqa: E402
from worker.rising import KEPT, MAX_TERMS, TermState  # noqa: E402
from worker.rules import load_rules  # noqa: E402
from worker.themes import ThemeMatcher, term_forms  # noqa: E402

MIX = {"en": 40, "nl": 20, "de": 15, "et": 15, "es": 10}
BRANDS = ["PostNL", "DHL", "DPD", "iDEAL", "Visa"]
DAY = 86400
WINDOWS = 29  # the 28-day baseline and the current day
PARTITIONS = 3


def comments(count: int, seed: int, new_words: float = 0.02) -> Iterator[tuple[str, str]]:
    """(comment, language): bench/themes.py's mix, with `new_words` of the words given a typo."""
    rng = random.Random(seed)
    pools = {language: WRITTEN[language] + HELD_OUT[language] for language in MIX}
    for language in rng.choices(list(MIX), weights=list(MIX.values()), k=count):
        words = " ".join(rng.sample(pools[language], rng.choice([1, 1, 2]))).split()
        text = " ".join(
            w[:at] + rng.choice("abcdefghijklmnopqrstuvwxyz") + w[at:] if rng.random() < new_words else w
            for w in words
            for at in [rng.randrange(len(w) + 1)]
        )
        if rng.random() < 0.33:
            text += f" #{rng.randrange(100000, 999999)}"
        if rng.random() < 0.1:
            text += f" ({rng.choice(BRANDS)})"
        yield text, language


class View:
    """The StateView as TermState uses it: what is published is read back at once (every replica's copy)."""

    def __init__(self) -> None:
        self.input_topic = "feedback"
        self.handlers: dict[str, Any] = {}
        self.records = 0
        self.bytes = 0

    def register(self, kind: str, handler: Any) -> None:
        self.handlers[kind] = handler

    def publish(self, records: Any) -> None:
        for key, value in records:
            self.records += 1
            self.bytes += len(value or b"")
            kind, _, rest = key.decode().split("|", 2)
            self.handlers[kind](rest, value)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def cpu_per_answer(matcher: ThemeMatcher, timed: int, seed: int) -> tuple[float, float]:
    """(µs per answer for terms + counting + publishing, µs per answer for the tagging the loop does anyway), warm."""
    batch = list(comments(timed, seed))
    taggings = [matcher.tag(text, language) for text, language in batch]
    now = 40 * DAY
    state = TermState(View())  # type: ignore[arg-type]  # the view's interface, without Kafka
    for _ in range(2):  # the second pass is timed: caches warm, windows exist
        started = time.process_time()
        for n, ((text, language), tagging) in enumerate(zip(batch, taggings, strict=True)):
            terms: dict[str, str] = {}
            for key, written in term_forms(text, tagging):
                terms.setdefault(key, written)
            state.count(n % PARTITIONS, terms, text, language, now - 3600 + n % 3600, n, now, DAY, 28 * DAY)
            if n % 1000 == 999:
                state.checkpoint({p: n for p in range(PARTITIONS)}, now, 28 * DAY)
        counting = (time.process_time() - started) / timed * 1e6
    started = time.process_time()
    for text, language in batch:
        matcher._tag(text, language)  # the tagging itself, not a remembered repeat
    tagging_us = (time.process_time() - started) / timed * 1e6
    return counting, tagging_us


def memory(matcher: ThemeMatcher, count: int, seed: int) -> dict[str, Any]:
    view = View()
    state = TermState(view)  # type: ignore[arg-type]
    now = 100 * DAY + DAY // 2  # mid-day: the current day is judged against the 28 before it
    start = now - now % DAY - 28 * DAY
    before = rss_mb()
    rng = random.Random(seed)
    started = time.process_time()
    for n, (text, language) in enumerate(comments(count, seed + 1)):
        ts = start + rng.randrange(WINDOWS * DAY - DAY // 2)
        terms: dict[str, str] = {}
        for key, written in term_forms(text, matcher.tag(text, language)):
            terms.setdefault(key, written)
        state.count(n % PARTITIONS, terms, text, language, ts, n, now, DAY, 28 * DAY)
        if n % 10_000 == 9_999:
            state.checkpoint({p: n for p in range(PARTITIONS)}, now, 28 * DAY)
    state.checkpoint({p: count for p in range(PARTITIONS)}, now, 28 * DAY)
    seconds = time.process_time() - started
    held = sum(len(w.counts) for partials in state.windows.values() for w in partials.values())
    own = sum(len(w.counts) for counting in state.owned.values() for w in counting.windows.values())
    pruned = sum(1 for partials in state.windows.values() for w in partials.values() if w.floor)
    floors = [w.floor for partials in state.windows.values() for w in partials.values()]
    return {
        "before": before,
        "after": rss_mb(),
        "seconds": seconds,
        "windows": sum(len(p) for p in state.windows.values()),
        "held": held,
        "own": own,
        "pruned": pruned,
        "max_floor": max(floors, default=0),
        "records": view.records,
        "mb_published": view.bytes / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comments", type=int, default=1_000_000, help="comments counted for the memory figure (default 1,000,000)")
    parser.add_argument("--timed", type=int, default=50_000, help="comments timed for the CPU figure (default 50,000)")
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    rules = load_rules(ROOT / "rules")
    matcher = rules.matcher
    assert matcher is not None, "the shipped rules define themes"
    counting, tagging = cpu_per_answer(matcher, args.timed, args.seed)
    print(f"counting the terms of an unhappy comment: {counting:5.2f} µs of CPU per answer (terms, counting, publishing)")
    print(f"  (tagging it, which the loop does anyway for themes: {tagging:5.2f} µs)")
    m = memory(matcher, args.comments, args.seed)
    print(
        f"{args.comments:,} unhappy comments over {WINDOWS} daily windows x {PARTITIONS} partitions in {m['seconds']:.0f} s of CPU: "
        f"peak RSS {m['after']:.0f} MB ({m['before']:.0f} MB before counting)"
    )
    print(
        f"  {m['held']:,} term counts held in {m['windows']} partition-windows as every replica reads them, {m['own']:,} more counted "
        f"by this worker's own partitions (at most {MAX_TERMS:,} a window; {m['pruned']} windows pruned to {KEPT:,}, "
        f"largest floor {m['max_floor']})"
    )
    print(f"  {m['records']:,} state records published, {m['mb_published']:.0f} MB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
