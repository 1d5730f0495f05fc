"""Fuzzing the event validation path: 100,000 random and mutated messages, as worker/app.py handles them.

`FeedbackEvent.model_validate_json`, then for a failure `deadletter.invalid_event` and the DLQ
record as published. Whatever a producer sends: nothing but pydantic's ValidationError escapes
validation, every invalid message gets a one-line reason, the dead letter serialises, and no
message takes long. A valid message must also survive what `handle` does next with it (its
timestamp, the shipped rules) and be a sane event (finite numbers).

Seeded (and hypothesis derandomized): the same inputs on every run. The counts are printed.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.fuzzing import cpu_budget, cpu_time, fuzzed_values, watchdog
from worker.demo.samples import FeedbackGenerator
from worker.events import FeedbackEvent
from worker.rules import load_rules
from worker.stream import deadletter
from worker.tasks import FollowupSpec, FollowUpTask, open_task

pytestmark = pytest.mark.fuzz

ROOT = Path(__file__).resolve().parent.parent
EVENTS = 100_000
SEED = 20261124
SLOWEST_ALLOWED_S = 0.5  # CPU seconds for one message; the worker handles thousands a second
RULES = load_rules(ROOT / "rules")
OPENED_AT = datetime(2026, 11, 24, 10, tzinfo=UTC)


class Outcome:
    """What one message did, tallied for the summary."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.reasons: Counter[str] = Counter()
        self.slowest = (0.0, b"")


def check_message(value: bytes | None, n: int, outcome: Outcome) -> None:
    """Exactly what Worker.handle does with a message value, with the properties it relies on."""
    started = cpu_time()
    try:
        event = FeedbackEvent.model_validate_json(value if value is not None else b"")
    except ValidationError as exc:
        letter = deadletter.invalid_event(exc, value, deadletter.Source(topic="feedback.events", partition=0, offset=n))
        assert letter.error.strip() and letter.error.splitlines() == [letter.error], (value, letter.error)
        published = letter.model_dump_json()  # what the worker sends to the DLQ
        assert deadletter.DeadLetter.model_validate_json(published).error == letter.error
        outcome.kinds["invalid"] += 1
        first = letter.errors[0].type if letter.errors else "none"
        if letter.error.startswith(("message is not UTF-8", "empty message")):
            first = letter.error.split(" (")[0]
        outcome.reasons[first] += 1
    else:
        outcome.kinds["valid"] += 1
        event.occurred_at.timestamp()  # handle() compares it with the clock
        value_of = event.customer.monthly_value
        assert value_of is None or math.isfinite(value_of), value  # it is summed into revenue at risk
        RULES.evaluate(event)
        # A task carries the customer, score and comment: it must survive the trip to FOLLOWUP_TOPIC intact.
        task = open_task(event, "r", ["r"], "high", FollowupSpec(), OPENED_AT)
        assert FollowUpTask.model_validate_json(task.model_dump_json()) == task, value
    elapsed = cpu_time() - started
    if elapsed > outcome.slowest[0]:
        outcome.slowest = (elapsed, value or b"")


def summary(title: str, outcome: Outcome, seconds: float) -> str:
    total = sum(outcome.kinds.values())
    reasons = ", ".join(f"{kind} {count}" for kind, count in outcome.reasons.most_common())
    return (
        f"\n{title}: {total} messages in {seconds:.1f}s: {outcome.kinds['valid']} valid, {outcome.kinds['invalid']} invalid "
        f"(first error: {reasons}); slowest {outcome.slowest[0] * 1000:.1f} ms CPU"
    )


def test_100000_random_and_mutated_events_only_ever_fail_validation_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(SEED)
    generator = FeedbackGenerator(seed=SEED, start=OPENED_AT)  # a fixed start: the same bytes on every run
    outcome = Outcome()
    started = time.perf_counter()
    with watchdog():
        for n, value in fuzzed_values(rng, EVENTS, generator.event):  # unchanged events must be valid
            check_message(value, n, outcome)
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(summary("event fuzz", outcome, seconds))
    assert sum(outcome.kinds.values()) == EVENTS
    assert outcome.kinds["valid"] >= EVENTS * 0.1  # the unchanged ones at least: the generator makes valid events
    assert outcome.kinds["invalid"] >= EVENTS * 0.5
    assert len(outcome.reasons) >= 15, outcome.reasons  # the mutators reach many kinds of mistake
    assert outcome.slowest[0] < cpu_budget(SLOWEST_ALLOWED_S), outcome.slowest[1][:200]


# -- hypothesis: structured events with any JSON in any field -------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
CUSTOMERS = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=5) | JSON_VALUES},
    optional={"monthly_value": st.floats(min_value=0) | JSON_VALUES, "segment": st.text(max_size=5) | JSON_VALUES},
)
#: Each field is a plausible value or any JSON at all; any of them may be left out.
EVENT_DICTS = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=5) | JSON_VALUES,
        "occurred_at": st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()) | JSON_VALUES,
        "survey": st.sampled_from(["nps", "csat", "ces"]) | JSON_VALUES,
        "score": st.integers(-1, 11) | JSON_VALUES,
        "customer": CUSTOMERS | JSON_VALUES,
    },
    optional={"comment": st.text() | JSON_VALUES, "attributes": JSON_VALUES},
).flatmap(lambda event: st.sets(st.sampled_from(sorted(event))).map(lambda drop: {k: v for k, v in event.items() if k not in drop}))


def test_structured_events_with_any_json_in_any_field(capsys: pytest.CaptureFixture[str]) -> None:
    outcome = Outcome()

    @settings(max_examples=1500, derandomize=True, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(event=EVENT_DICTS)
    def run(event: dict) -> None:
        # allow_nan: NaN and Infinity as JSON literals, as some producers (Python's json) write them.
        check_message(json.dumps(event, allow_nan=True).encode(), 0, outcome)

    started = time.perf_counter()
    with watchdog():
        run()
    with capsys.disabled():
        print(summary("hypothesis events", outcome, time.perf_counter() - started))
    assert outcome.kinds["valid"] > 0 and outcome.kinds["invalid"] > 0
