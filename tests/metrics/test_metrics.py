"""Metric arithmetic (worker/metrics/tally.py) against hand-worked examples: no Kafka needed.

Every expected number is worked out in a comment from the definitions in docs/metrics.md, never by
calling the formula under test.
"""

from __future__ import annotations

import itertools
import json

import pytest
from pydantic import ValidationError

from worker.metrics import MetricSnapshot, WindowRef
from worker.metrics.tally import Tally, figures, nps_margin_of_error, nps_score, revenue_at_risk

CHURN = 0.95
T0 = 1_795_000_000  # any epoch second; only the order of timestamps matters here


def tally_of(rows: list[tuple[str, int, str, int, float | None]]) -> Tally:
    """A Tally from (survey, score, customer id, occurred_at, monthly_value) rows."""
    tally = Tally()
    for survey, score, customer, ts, value in rows:
        tally.add(survey, score, customer, ts, value)
    return tally


def fig(tally: Tally) -> dict:
    """figures() as plain JSON-able data, so results compare with ==."""
    return {k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in figures(tally, CHURN).items()}


def test_readme_revenue_example() -> None:
    """100 customers at $100/month, 10 unhappy: 10 x 100 x 0.95 = $950."""
    rows = [("csat", 5, f"happy-{i}", T0, 100.0) for i in range(90)]
    rows += [("csat", 2, f"unhappy-{i}", T0, 100.0) for i in range(10)]
    f = figures(tally_of(rows), CHURN)
    assert f["responses"] == 100
    assert (f["csat"].responses, f["csat"].satisfied, f["csat"].score) == (100, 90, 90.0)  # 90 / 100 x 100
    assert f["unhappy_customers"] == 10
    assert f["revenue_at_risk"] == 950.0
    assert f["nps"].score is None and f["ces"].mean is None  # no NPS / CES responses: null, not 0


def test_nps_mixed_window() -> None:
    """40 promoters, 20 passives, 20 detractors (n = 80).

    score = 40/80 - 20/80 = 50 % - 25 % = 25.0
    margin: p+ = 0.5, p- = 0.25; p+ + p- - (p+ - p-)^2 = 0.75 - 0.0625 = 0.6875
            sqrt(0.6875 / 80) = sqrt(0.00859375) = 0.092702; x 1.96 x 100 = 18.17
    """
    rows = [("nps", 9 + i % 2, f"p{i}", T0, None) for i in range(40)]
    rows += [("nps", 7 + i % 2, f"n{i}", T0, None) for i in range(20)]
    rows += [("nps", i % 7, f"d{i}", T0, 50.0) for i in range(20)]  # scores 0..6
    nps = figures(tally_of(rows), CHURN)["nps"]
    assert (nps.responses, nps.promoters, nps.passives, nps.detractors) == (80, 40, 20, 20)
    assert nps.score == 25.0
    assert nps.margin_of_error == 18.17
    # every detractor is an unhappy customer: 20 x $50 x 0.95 = $950
    assert figures(tally_of(rows), CHURN)["revenue_at_risk"] == 950.0


def test_nps_extremes() -> None:
    """All promoters: 100 - 0 = 100, variance 1 + 0 - 1 = 0 -> margin 0. All detractors: -100, margin 0."""
    promoters = figures(tally_of([("nps", 10, f"c{i}", T0, None) for i in range(7)]), CHURN)["nps"]
    assert (promoters.score, promoters.margin_of_error) == (100.0, 0.0)
    detractors = figures(tally_of([("nps", 0, f"c{i}", T0, None) for i in range(7)]), CHURN)["nps"]
    assert (detractors.score, detractors.margin_of_error) == (-100.0, 0.0)


def test_nps_even_split_margin() -> None:
    """2 promoters, 2 detractors: score 0; variance 0.5 + 0.5 - 0 = 1; 1.96 x sqrt(1/4) x 100 = 98."""
    assert nps_score(2, 2, 4) == 0.0
    assert nps_margin_of_error(2, 2, 4) == pytest.approx(98.0)


def test_formulas_without_responses_are_null() -> None:
    assert nps_score(0, 0, 0) is None
    assert nps_margin_of_error(0, 0, 0) is None
    assert revenue_at_risk({}, CHURN) == 0.0


@pytest.mark.parametrize(
    ("survey", "score", "bucket", "unhappy"),
    [
        ("nps", 0, "detractors", True),
        ("nps", 6, "detractors", True),
        ("nps", 7, "passives", False),
        ("nps", 8, "passives", False),
        ("nps", 9, "promoters", False),
        ("nps", 10, "promoters", False),
        ("csat", 1, None, True),
        ("csat", 3, None, True),
        ("csat", 4, "satisfied", False),
        ("csat", 5, "satisfied", False),
        ("ces", 1, None, False),
        ("ces", 3, None, False),
        ("ces", 4, "high_effort", True),
        ("ces", 5, "high_effort", True),
    ],
)
def test_category_boundaries(survey: str, score: int, bucket: str | None, unhappy: bool) -> None:
    tally = tally_of([(survey, score, "c1", T0, 10.0)])
    for name in ("promoters", "passives", "detractors", "satisfied", "high_effort"):
        assert getattr(tally, name) == (1 if name == bucket else 0), name
    assert (len(tally.unhappy) == 1) is unhappy


def test_empty_window() -> None:
    f = fig(Tally())
    assert f == {
        "responses": 0,
        "nps": {"responses": 0, "promoters": 0, "passives": 0, "detractors": 0, "score": None, "margin_of_error": None},
        "csat": {"responses": 0, "satisfied": 0, "score": None},
        "ces": {"responses": 0, "mean": None, "high_effort": 0},
        "unhappy_customers": 0,
        "revenue_at_risk": 0.0,
        "late_events": 0,
        "comments": 0,
        "tagged": 0,
        "themes": {},
    }


def test_csat_only_window_has_null_nps_and_ces() -> None:
    """3 CSAT: 5, 4, 1 -> 2/3 satisfied = 66.67; no NPS or CES response at all."""
    f = fig(tally_of([("csat", 5, "a", T0, None), ("csat", 4, "b", T0, None), ("csat", 1, "c", T0, None)]))
    assert f["csat"] == {"responses": 3, "satisfied": 2, "score": 66.67}
    assert f["nps"]["responses"] == 0 and f["nps"]["score"] is None and f["nps"]["margin_of_error"] is None
    assert f["ces"]["responses"] == 0 and f["ces"]["mean"] is None


def test_ces_mean_and_high_effort() -> None:
    """Efforts 1, 2, 3, 4, 5, 5: mean 20 / 6 = 3.33; high effort (4-5) = 3, from 2 customers."""
    rows = [("ces", s, c, T0, 10.0) for s, c in [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e"), (5, "d")]]
    f = fig(tally_of(rows))
    assert f["ces"] == {"responses": 6, "mean": 3.33, "high_effort": 3}
    assert f["unhappy_customers"] == 2  # d (twice) and e
    assert f["revenue_at_risk"] == 19.0  # (10 + 10) x 0.95


def test_customer_counted_once_latest_unhappy_value_wins() -> None:
    """One customer, three unhappy answers: the latest by occurred_at ($300) counts, once.

    A later *happy* answer ($1000) does not change the value at risk: 300 x 0.95 = 285.
    """
    rows = [
        ("nps", 3, "acme", T0 + 60, 300.0),  # latest unhappy, though not added last
        ("csat", 2, "acme", T0, 100.0),
        ("ces", 5, "acme", T0 + 30, 200.0),
        ("csat", 5, "acme", T0 + 120, 1000.0),
    ]
    for ordering in itertools.permutations(rows):
        f = figures(tally_of(list(ordering)), CHURN)
        assert f["unhappy_customers"] == 1
        assert f["revenue_at_risk"] == 285.0


def test_unhappy_customer_without_monthly_value() -> None:
    """Counted as unhappy, contributes $0: (0 + 80) x 0.95 = 76."""
    f = figures(tally_of([("csat", 1, "anon", T0, None), ("csat", 1, "paying", T0, 80.0)]), CHURN)
    assert f["unhappy_customers"] == 2
    assert f["revenue_at_risk"] == 76.0


def test_same_timestamp_tie_is_order_independent() -> None:
    """Two unhappy answers at the same instant: the larger value is kept whatever the order."""
    one, two = ("csat", 1, "c", T0, 40.0), ("csat", 2, "c", T0, 60.0)
    assert tally_of([one, two]).unhappy == tally_of([two, one]).unhappy == {"c": (T0, 60.0)}


PARTIALS = [
    [("nps", 10, "a", T0, 100.0), ("nps", 2, "b", T0 + 5, 100.0), ("csat", 5, "c", T0, 70.0)],
    [("nps", 1, "b", T0 + 9, 400.0), ("ces", 4, "d", T0 + 1, 20.0), ("nps", 8, "e", T0, None)],
    [("csat", 3, "b", T0 + 2, 900.0), ("ces", 2, "a", T0 + 3, 100.0)],
    [("nps", 9, "f", T0, 10.0), ("csat", 1, "g", T0 + 4, None)],
]


def test_merge_is_order_independent_and_exact() -> None:
    """Four partials merged in all 24 orders = one Tally that saw every response.

    By hand: 10 responses; NPS 5 (promoters a, f; passive e; detractors b, b) -> score 0,
    margin 1.96 x sqrt((2/5 + 2/5 - 0) / 5) x 100 = 1.96 x sqrt(0.16) x 100 = 1.96 x 40 = 78.4;
    CSAT 3 (1 satisfied) -> 33.33; CES 2, mean 3.0, 1 high effort;
    unhappy b (latest T0+9: $400), d ($20), g (no value): (400 + 20) x 0.95 = 399.
    """
    whole = tally_of([row for part in PARTIALS for row in part])
    expected = fig(whole)
    assert expected["responses"] == 10
    assert expected["nps"] == {
        "responses": 5, "promoters": 2, "passives": 1, "detractors": 2, "score": 0.0, "margin_of_error": 78.4
    }  # fmt: skip
    assert expected["csat"] == {"responses": 3, "satisfied": 1, "score": 33.33}
    assert expected["ces"] == {"responses": 2, "mean": 3.0, "high_effort": 1}
    assert (expected["unhappy_customers"], expected["revenue_at_risk"]) == (3, 399.0)
    for ordering in itertools.permutations(PARTIALS):
        total = Tally()
        for part in ordering:
            total.merge(tally_of(part))
        assert total == whole
        assert fig(total) == expected


def test_merge_leaves_the_other_tally_alone() -> None:
    other = tally_of([("csat", 1, "x", T0, 5.0)])
    total = tally_of([("csat", 2, "x", T0 + 1, 9.0)])
    total.merge(other)
    assert other == tally_of([("csat", 1, "x", T0, 5.0)])
    assert total.responses == 2 and total.unhappy == {"x": (T0 + 1, 9.0)}


def test_revenue_does_not_depend_on_merge_order_by_a_cent() -> None:
    """Exact sum 866.30 x 0.95 = 822.985: the float sum's last bit decides the rounding."""
    parts = [tally_of([("csat", 1, f"c{i}", T0, v)]) for i, v in enumerate([22.7, 351.99, 491.61])]
    results = set()
    for ordering in itertools.permutations(parts):
        total = Tally()
        for part in ordering:
            total.merge(part)
        results.add(figures(total, CHURN)["revenue_at_risk"])
    assert len(results) == 1, results


def test_tally_json_round_trip() -> None:
    """Through real JSON text: tuples come back as lists and must be restored as tuples."""
    tally = tally_of([row for part in PARTIALS for row in part])
    tally.late = 3
    text = json.dumps(tally.to_json())
    back = Tally.from_json(json.loads(text))
    assert back == tally
    assert back.unhappy["b"] == (T0 + 9, 400.0) and back.unhappy["g"] == (T0 + 4, None)
    assert Tally.from_json(json.loads(json.dumps(Tally().to_json()))) == Tally()


def test_snapshot_json_matches_the_contract() -> None:
    """Field names downstream services rely on (docs/metrics.md: metrics.snapshot)."""
    snapshot = MetricSnapshot(
        window=WindowRef(size="24h", start="2026-11-22T12:00:00+00:00", end="2026-11-23T12:00:00+00:00"),
        dimension={"customer.segment": "smb"},
        final=False,
        emitted_at="2026-11-23T11:30:00+00:00",
        **figures(tally_of([("nps", 10, "a", T0, None), ("csat", 2, "b", T0, 10.0), ("ces", 3, "c", T0, None)]), CHURN),
    )
    data = json.loads(snapshot.model_dump_json())
    assert set(data) == {
        "type", "window", "dimension", "final", "emitted_at", "responses",
        "nps", "csat", "ces", "unhappy_customers", "revenue_at_risk", "late_events", "comments", "tagged", "themes",
        "loop", "root_causes",
    }  # fmt: skip
    assert data["type"] == "metrics.snapshot"
    assert set(data["window"]) == {"size", "start", "end"}
    assert set(data["nps"]) == {"responses", "promoters", "passives", "detractors", "score", "margin_of_error"}
    assert set(data["csat"]) == {"responses", "satisfied", "score"}
    assert set(data["ces"]) == {"responses", "mean", "high_effort"}
    assert data["responses"] == 3 and data["nps"]["score"] == 100.0 and data["csat"]["score"] == 0.0
    assert data["ces"]["mean"] == 3.0 and data["revenue_at_risk"] == 9.5  # 10 x 0.95
    assert MetricSnapshot.model_validate(data) == snapshot
    with pytest.raises(ValidationError):
        snapshot.final = True  # frozen: a snapshot is a value
