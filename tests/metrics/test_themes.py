"""Comment themes in metric snapshots (issue 21): what each theme costs, against hand-worked examples.

Every expected number is worked out in a comment from the definitions in docs/metrics.md ("Themes"), never by
calling the formula under test. No Kafka: partials go through the records a MetricState reads from the state topic.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Set

from tests.metrics.test_windows_state import T0, TOPIC, H, apply, emitter_of, event, view_of
from worker.metrics import MetricsConfig, MetricSnapshot, PartitionMetrics, Tally, WindowRef, figures

CHURN = 0.95
NONE: frozenset[str] = frozenset()
LATE = frozenset({"delivery", "late"})  # a comment about a late parcel: the theme and its parent
FAST = frozenset({"delivery"})
BILLING = frozenset({"billing"})

#: (survey, score, customer, occurred_at, monthly_value, the comment's themes: None without a comment)
Row = tuple[str, int, str, int, float | None, Set[str] | None]
WINDOW: list[Row] = [
    ("nps", 2, "a", T0, 100.0, LATE),
    ("nps", 4, "b", T0 + 1, 200.0, LATE),
    ("nps", 9, "c", T0 + 2, 50.0, FAST),
    ("nps", 10, "d", T0, None, None),  # no comment
    ("nps", 10, "e", T0, 10.0, NONE),  # a comment that mentions no theme
    ("nps", 8, "f", T0, 10.0, BILLING),
    ("csat", 2, "a", T0 + 5, 150.0, LATE),  # a again, later: their latest unhappy value is now $150
    ("csat", 5, "g", T0, 30.0, BILLING),
    ("ces", 5, "h", T0, 400.0, BILLING),
    ("ces", 2, "b", T0 + 3, 999.0, NONE),
]


def tally_of(rows: list[Row]) -> Tally:
    tally = Tally()
    for survey, score, customer, ts, value, themes in rows:
        tally.add(survey, score, customer, ts, value, themes)
    return tally


def themes_of(tally: Tally) -> dict[str, dict]:
    return {theme: f.model_dump() for theme, f in figures(tally, CHURN)["themes"].items()}


def test_each_theme_gets_the_snapshots_figures_over_the_answers_mentioning_it() -> None:
    """The window: 10 answers, 9 with a comment (all but d's), 7 of them mentioning a theme.
    Its NPS: promoters c, d, e; passive f; detractors a, b: (3 - 2) / 6 = 16.67.

    late (a, b, a again): NPS 2 detractors = -100; CSAT 0 of 1; no CES. Unhappy a ($150, their latest unhappy
      response in the window), b ($200; their later CES 2 is not unhappy):
      (150 + 200) x 0.95 = 332.5. Without it: c, d, e promoters, f passive: 3 / 4 = 75; impact 16.67 - 75 = -58.33.
    delivery (late's three and c's praise): NPS a, b detractors, c promoter: (1 - 2) / 3 = -33.33. Same unhappy
      customers: 332.5. Without it: d, e promoters, f passive: 2 / 3 = 66.67; impact 16.67 - 66.67 = -50.0.
    billing (f, g, h): NPS 1 passive = 0, margin 0; CSAT 1 of 1 = 100; CES mean 5, 1 high effort. Unhappy h:
      400 x 0.95 = 380. Without it: a, b detractors, c, d, e promoters: 1 / 5 = 20; impact 16.67 - 20 = -3.33.
    """
    f = figures(tally_of(WINDOW), CHURN)
    assert (f["responses"], f["comments"], f["tagged"]) == (10, 9, 7)
    assert f["nps"].score == 16.67
    themes = themes_of(tally_of(WINDOW))
    assert list(themes) == ["billing", "delivery", "late"]  # by id; a theme no answer mentions is absent
    assert themes["late"] == {
        "responses": 3,
        "unhappy": 2,
        "nps": {"responses": 2, "promoters": 0, "passives": 0, "detractors": 2, "score": -100.0, "margin_of_error": 0.0},
        "csat": {"responses": 1, "satisfied": 0, "score": 0.0},
        "ces": {"responses": 0, "mean": None, "high_effort": 0},
        "nps_impact": -58.33,
        "revenue_at_risk": 332.5,
    }
    delivery = themes["delivery"]
    assert (delivery["responses"], delivery["unhappy"], delivery["revenue_at_risk"]) == (4, 2, 332.5)
    assert (delivery["nps"]["responses"], delivery["nps"]["score"], delivery["nps_impact"]) == (3, -33.33, -50.0)
    assert themes["billing"] == {
        "responses": 3,
        "unhappy": 1,
        "nps": {"responses": 1, "promoters": 0, "passives": 1, "detractors": 0, "score": 0.0, "margin_of_error": 0.0},
        "csat": {"responses": 1, "satisfied": 1, "score": 100.0},
        "ces": {"responses": 1, "mean": 5.0, "high_effort": 1},
        "nps_impact": -3.33,
        "revenue_at_risk": 380.0,
    }


def test_a_themes_unhappy_customers_are_at_risk_at_the_value_the_window_counts_them_at() -> None:
    """a is unhappy about a late parcel ($100), then, later, about an invoice ($300): the window counts a once, at $300
    (their latest unhappy response); so do late and billing, each: 300 x 0.95 = 285. Theme shares are not a split."""
    rows: list[Row] = [("nps", 3, "a", T0, 100.0, LATE), ("csat", 1, "a", T0 + 60, 300.0, BILLING), ("nps", 9, "b", T0, 50.0, LATE)]
    f = figures(tally_of(rows), CHURN)
    assert (f["unhappy_customers"], f["revenue_at_risk"]) == (1, 285.0)
    themes = themes_of(tally_of(rows))
    assert {theme: (t["unhappy"], t["revenue_at_risk"]) for theme, t in themes.items()} == {
        "billing": (1, 285.0),
        "delivery": (1, 285.0),
        "late": (1, 285.0),
    }


def test_nps_impact_is_zero_without_nps_answers_and_null_where_undefined() -> None:
    """billing has CSAT answers only: the NPS without it is the window's, impact 0.
    late: every NPS answer mentions it, so there is no NPS without it: null. A CSAT-only window: null for all."""
    rows: list[Row] = [("nps", 10, "a", T0, None, LATE), ("nps", 0, "b", T0, None, LATE), ("csat", 1, "c", T0, 5.0, BILLING)]
    themes = themes_of(tally_of(rows))
    assert themes["billing"]["nps_impact"] == 0.0 and themes["billing"]["nps"]["score"] is None
    assert themes["late"]["nps_impact"] is None and themes["late"]["nps"]["score"] == 0.0
    only_csat = themes_of(tally_of([("csat", 5, "a", T0, None, LATE), ("csat", 1, "b", T0, None, NONE)]))
    assert only_csat["late"]["nps_impact"] is None and only_csat["delivery"]["nps_impact"] is None


def test_a_theme_that_lifts_the_score_has_a_positive_impact() -> None:
    """Promoters a, b mention praise, detractor c does not: window (2 - 1) / 3 = 33.33, without praise -100;
    impact 33.33 - (-100) = 133.33."""
    praise = frozenset({"praise"})
    rows: list[Row] = [("nps", 10, "a", T0, None, praise), ("nps", 9, "b", T0, None, praise), ("nps", 3, "c", T0, 1.0, NONE)]
    assert themes_of(tally_of(rows))["praise"]["nps_impact"] == 133.33


def test_merged_partials_give_the_same_theme_figures_in_any_order_and_survive_json() -> None:
    """Four partials (as four partitions publish them) merged in all 24 orders = one Tally that saw every answer;
    each partial through real JSON text, as the state topic carries it."""
    parts = [WINDOW[0:3], WINDOW[3:5], WINDOW[5:8], WINDOW[8:]]
    whole = tally_of(WINDOW)
    for ordering in itertools.permutations(parts):
        total = Tally()
        for part in ordering:
            total.merge(Tally.from_json(json.loads(json.dumps(tally_of(part).to_json()))))
        assert total == whole
    assert Tally.from_json(json.loads(json.dumps(whole.to_json()))) == whole


def test_a_partial_published_by_an_older_worker_still_loads() -> None:
    """A pane record from before themes (no comments, tagged or themes): its counts, and no comment or theme."""
    old = {
        "stamp": 3,
        "tally": {
            "responses": 2, "promoters": 1, "passives": 0, "detractors": 1, "csat": 0, "satisfied": 0, "ces": 0,
            "effort_sum": 0, "high_effort": 0, "late": 0, "unhappy": {"b": [T0, 40.0]},
        },
    }  # fmt: skip
    view = view_of([(f"pane|{TOPIC}|0|{H}|{T0}|".encode(), json.dumps(old).encode())])
    snapshot = emitter_of(view).snapshot((H, T0, ""), final=False, now=T0 + 60)
    assert (snapshot.responses, snapshot.nps.score, snapshot.revenue_at_risk) == (2, 0.0, 38.0)
    assert (snapshot.comments, snapshot.tagged, snapshot.themes) == (0, 0, {})


def test_comments_are_counted_when_the_rules_define_no_themes() -> None:
    """Rules without themes: the tagging sets no `themes` key. The comments count; `themes` is {}."""
    pm = PartitionMetrics(TOPIC, 0, MetricsConfig.model_validate({"dimensions": []}))
    for offset, comment in enumerate(["Late again", None, "", "Fine"]):
        pm.add_data(event("nps", 5, comment=comment).model_dump(), T0, offset, T0 + 60)
    view = view_of(pm.changes(4, T0 + 60))
    snapshot = emitter_of(view).snapshot((H, T0, ""), final=False, now=T0 + 60)
    assert (snapshot.responses, snapshot.comments, snapshot.tagged, snapshot.themes) == (4, 2, 0, {})  # "" is no comment


def test_a_snapshot_sums_each_themes_counts_over_partitions_and_dimensions() -> None:
    """Partition 0: a (smb) late, detractor $100; partition 1: a again later ($300, smb) late, b (enterprise) late
    promoter. Overall late: 3 answers, NPS (1 - 2) / 3 = -33.33, unhappy a once at $300: 285. smb: a's two, -100."""
    config = MetricsConfig.model_validate({"windows": [{"size": "1h"}], "dimensions": ["customer.segment"]})
    now = T0 + 60
    p0, p1 = PartitionMetrics(TOPIC, 0, config), PartitionMetrics(TOPIC, 1, config)
    late_a = event("nps", 3, customer="a", value=100.0, ts=T0, segment="smb", comment="late")
    p0.add_data(late_a.model_dump() | {"themes": LATE}, T0, 0, now)
    again = event("nps", 5, customer="a", value=300.0, ts=T0 + 9, segment="smb", comment="late")
    p1.add_data(again.model_dump() | {"themes": LATE}, T0 + 9, 0, now)
    praise = event("nps", 10, customer="b", ts=T0 + 1, segment="enterprise", comment="late but fine")
    p1.add_data(praise.model_dump() | {"themes": LATE}, T0 + 1, 1, now)
    view = view_of(p0.changes(1, now), p1.changes(2, now))
    emitter = emitter_of(view, config)
    late = emitter.snapshot((H, T0, ""), final=False, now=now).themes["late"]
    assert (late.responses, late.nps.score, late.unhappy, late.revenue_at_risk, late.nps_impact) == (3, -33.33, 1, 285.0, None)
    smb = emitter.snapshot((H, T0, "customer.segment=smb"), final=False, now=now)
    assert (smb.comments, smb.tagged, smb.themes["late"].responses, smb.themes["late"].nps.score) == (2, 2, 2, -100.0)
    apply(view, p1.changes(2, now))  # re-read: replaced, never added
    assert emitter.snapshot((H, T0, ""), final=False, now=now).themes["late"].responses == 3


def test_snapshot_themes_json() -> None:
    """The record downstream services read: themes by id, each with the snapshot's figures and its impact."""
    snapshot = MetricSnapshot(
        window=WindowRef(size="24h", start="2026-11-22T12:00:00+00:00", end="2026-11-23T12:00:00+00:00"),
        dimension={},
        final=False,
        emitted_at="2026-11-23T11:30:00+00:00",
        **figures(tally_of(WINDOW), CHURN),
    )
    data = json.loads(snapshot.model_dump_json())
    assert (data["comments"], data["tagged"]) == (9, 7)
    assert set(data["themes"]["late"]) == {"responses", "unhappy", "nps", "csat", "ces", "nps_impact", "revenue_at_risk"}
    assert MetricSnapshot.model_validate(data) == snapshot
