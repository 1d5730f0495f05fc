"""Event validation and the dead-letter reasons an operator reads."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from tests.conftest import event_bytes
from worker.demo import FeedbackGenerator
from worker.events import FeedbackEvent, epoch_seconds, event_data, score_in_words
from worker.stream import deadletter

SOURCE = deadletter.Source(topic="t", partition=1, offset=42, timestamp=1)


def _letter(value: bytes | None) -> deadletter.DeadLetter:
    with pytest.raises(ValidationError) as info:
        FeedbackEvent.model_validate_json(value if value is not None else b"")
    return deadletter.invalid_event(info.value, value, SOURCE)


def test_the_documented_example_is_valid():
    example = (
        b'{"event_id": "f-123", "occurred_at": "2026-11-24T10:00:00+00:00", "survey": "nps", "score": 3,'
        b' "comment": "Printer ink arrived late again", "customer": {"id": "c-42", "name": "Purrfect Prints",'
        b' "email": "ops@purrfect.example", "segment": "smb", "monthly_value": 100.0}, "channel": "email",'
        b' "touchpoint": "support", "attributes": {"product": "ink", "region": "eu"}}'
    )
    event = FeedbackEvent.model_validate_json(example)
    assert event.customer.segment == "smb" and event.attributes["product"] == "ink"
    assert score_in_words(event) == "NPS 3/10 · detractor"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{oops", "not valid JSON"),
        (b"\xff\xfe{}", "message is not UTF-8 text"),
        (event_bytes(score=11), "score: 11 is outside the nps range 0-10"),
        (event_bytes(survey="csat", score=0), "score: 0 is outside the csat range 1-5"),
        (event_bytes(survey="ces", score=6), "score: 6 is outside the ces range 1-5"),
        (event_bytes(score=3.5), "score: Input should be a valid integer"),
        (event_bytes(score="3"), "score: Input should be a valid integer"),
        (event_bytes(score=True), "score: Input should be a valid integer"),
        (event_bytes(survey="sentiment"), "survey: Input should be 'nps', 'csat' or 'ces'"),
        (event_bytes(occurred_at="2026-11-24T10:00:00"), "occurred_at: Input should have timezone info"),
        (event_bytes(occurred_at="yesterday"), "occurred_at:"),
        (event_bytes(customer={"id": "c", "monthly_value": -1}), "customer.monthly_value: Input should be greater than or equal to 0"),
        (event_bytes(customer={"name": "no id"}), "customer.id: Field required"),
        (event_bytes(event_id=""), "event_id:"),
        (b"[1, 2]", "event: Input should be an object"),
    ],
)
def test_each_bad_event_gets_a_one_line_reason_naming_the_field(value: bytes, reason: str):
    letter = _letter(value)
    assert letter.error.startswith(reason), letter.error
    assert "\n" not in letter.error
    assert letter.source.offset == 42 and letter.errors


def test_several_problems_are_counted_and_all_listed():
    letter = _letter(json.dumps({"survey": "nps"}).encode())
    assert "(and 3 more)" in letter.error
    assert {e.field for e in letter.errors} == {"event_id", "occurred_at", "score", "customer"}


def test_non_utf8_originals_are_kept_as_base64():
    raw = b"\xff\xfe\x00binary"
    letter = _letter(raw)
    assert letter.original_encoding == "base64"
    assert base64.b64decode(letter.original) == raw


def test_utf8_originals_are_kept_as_text():
    raw = '{"comment": "Väga hea, aitäh"'.encode()
    letter = _letter(raw)
    assert letter.original_encoding == "utf-8" and letter.original == raw.decode()


@pytest.mark.parametrize(
    ("survey", "score", "words"),
    [
        ("nps", 9, "NPS 9/10 · promoter"),
        ("nps", 7, "NPS 7/10 · passive"),
        ("nps", 6, "NPS 6/10 · detractor"),
        ("csat", 4, "CSAT 4/5 · satisfied"),
        ("csat", 3, "CSAT 3/5 · neutral"),
        ("csat", 2, "CSAT 2/5 · dissatisfied"),
        ("ces", 4, "CES 4/5 · high effort"),
        ("ces", 2, "CES 2/5 · low effort"),
    ],
)
def test_scores_in_words(survey: str, score: int, words: str):
    event = FeedbackEvent.model_validate_json(event_bytes(survey=survey, score=score))
    assert score_in_words(event) == words


@pytest.mark.parametrize("monthly_value", [b"1e400", b"1" + b"0" * 400, b"Infinity"])
def test_an_infinite_monthly_value_is_dead_lettered_not_summed_into_revenue_at_risk(monthly_value: bytes):
    # Found by the fuzzer (tests/test_fuzz_events.py): 1e400 parsed as infinity and was accepted, so revenue
    # at risk became infinite and the task and snapshot JSON carried null where a number was promised.
    # Only the value is replaced: the event's time (a minute ago) may hold "0.5" too, as in 21:55:30.512345.
    raw = event_bytes(customer={"id": "c-1", "monthly_value": 0.5}).replace(b'"monthly_value": 0.5', b'"monthly_value": ' + monthly_value)
    assert raw.count(monthly_value) == 1
    assert _letter(raw).error == "customer.monthly_value: Input should be a finite number"


# -- the worker's fast validation (events.event_data) ---------------------------------------

EDGE_VALUES = [
    event_bytes(),
    event_bytes(comment=None, channel=None, touchpoint=None, attributes={"tier": 1, "vip": True, "tags": ["a"], "n": None}),
    event_bytes(customer={"id": "c", "monthly_value": 7}),  # an int is a valid float
    event_bytes(customer={"id": "c", "monthly_value": "12.5"}),  # as the model's lax float allows
    event_bytes(customer={"id": "c", "monthly_value": None, "segment": None, "extra": 1}),
    event_bytes(occurred_at="2026-11-24T10:00:00.123456-05:30", unknown={"x": [1]}),
    event_bytes(occurred_at="2026-11-24T10:00:00Z", survey="ces", score=5),
    event_bytes(survey="csat", score=1),
    event_bytes(survey="csat", score=6),
    event_bytes(survey="ces", score=0),
    event_bytes(score=-1),
    event_bytes(score=10.0),
    event_bytes(score=None),
    event_bytes(attributes=[1]),
    event_bytes(attributes=None),
    event_bytes(customer=None),
    event_bytes(customer={"id": ""}),
    event_bytes(event_id=None),
    event_bytes(comment=5),
    event_bytes(occurred_at=1764000000),
    event_bytes(survey=None),
    event_bytes(customer={"id": "c-1", "monthly_value": 0.5}).replace(b": 0.5}", b": 1e400}"),  # infinite: refused by both
    b"",
    b"null",
    b"{}",
    b'{"event_id": "a"',
    b"\xc3\x28",
]


@pytest.mark.parametrize("value", EDGE_VALUES)
def test_event_data_accepts_exactly_what_the_model_accepts_and_reads_the_same(value: bytes):
    """The worker validates with event_data and builds the model only when a rule matched or the
    value is bad: both must agree on every input, and give the same field values."""
    data = event_data(value)
    try:
        event = FeedbackEvent.model_validate_json(value)
    except ValidationError:
        assert data is None
        return
    assert data == event.model_dump()


def test_event_data_agrees_with_the_model_on_the_demo_mix_and_its_malformed_messages():
    generator = FeedbackGenerator(seed=3)
    values = [value for _, value in generator.stream(3000, malformed_every=7)]
    assert sum(event_data(v) is None for v in values) == 3000 // 7
    for value in values:
        data = event_data(value)
        if data is None:
            with pytest.raises(ValidationError):
                FeedbackEvent.model_validate_json(value)
        else:
            assert data == FeedbackEvent.model_validate_json(value).model_dump()


def test_epoch_seconds_is_int_of_timestamp():
    rng = random.Random(5)
    for _ in range(20000):
        offset = timedelta(minutes=rng.choice([0, 1, -300, 330, -660, 840, -1439]))
        seconds = rng.choice(
            [rng.uniform(-1e10, 5e9), rng.uniform(-1e5, 1e5), rng.uniform(4.1e9, 4.11e9), float(rng.randint(0, 4 * 10**9))]
        )
        when = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)).astimezone(timezone(offset))
        data = event_data(event_bytes(occurred_at=when.isoformat()))
        assert data is not None
        assert epoch_seconds(data["occurred_at"]) == int(data["occurred_at"].timestamp()), when.isoformat()
