"""`feedback-worker report themes`: a window's theme table, read from the snapshots on METRICS_TOPIC.

The snapshots are made here from hand-worked counts (test_themes.py's window) and produced as the emitter would:
keyed `<size>|<start>|<dimension>`, the latest per key winning. Through the real CLI and broker.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import produce
from tests.metrics.test_themes import CHURN, WINDOW, tally_of
from worker.cli import EXIT_FAILED, EXIT_OK, main
from worker.metrics import MetricSnapshot, Tally, WindowRef, figures, snapshot_key
from worker.metrics.windows import iso

DAY_START = 1_795_000_000 - 1_795_000_000 % 3600  # an hour boundary


def snapshot(start: int, tally: Tally, dimension: dict[str, str] | None = None) -> tuple[bytes, bytes]:
    record = MetricSnapshot(
        window=WindowRef(size="24h", start=iso(start), end=iso(start + 86400)),
        dimension=dimension or {},
        final=False,
        emitted_at=iso(start + 3600),
        **figures(tally, CHURN),
    )
    dim = "".join(f"{path}={value}" for path, value in (dimension or {}).items())
    return snapshot_key("24h", start, dim).encode(), record.model_dump_json().encode()


@pytest.fixture
def metrics_topic(kafka_bootstrap: str, topics: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Two 24h windows an hour apart (the later one interim, then again with every answer) and one smb figure, a
    stray record, and a snapshot from before themes (no comments, tagged or themes)."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("METRICS_TOPIC", topics["METRICS_TOPIC"])
    rules = tmp_path / "rules.yaml"  # the labels people read: from the rules' themes
    rules.write_text(
        "rules: [{id: r, when: {survey: nps}}]\nthemes:\n  - {id: delivery, label: Delivery}\n"
        "  - {id: late, label: Late, parent: delivery, terms: {en: [late]}}\n  - {id: billing, label: Billing}\n"
    )
    monkeypatch.setenv("RULES_PATH", str(rules))
    older = json.loads(snapshot(DAY_START - 7200, tally_of(WINDOW[:2]))[1])
    for field in ("comments", "tagged", "themes"):
        del older[field]
    produce(
        kafka_bootstrap,
        topics["METRICS_TOPIC"],
        [
            (snapshot_key("24h", DAY_START - 7200, "").encode(), json.dumps(older).encode()),
            snapshot(DAY_START - 3600, tally_of(WINDOW[5:])),
            snapshot(DAY_START, tally_of(WINDOW[:3])),
            snapshot(DAY_START, tally_of(WINDOW)),  # the same key later: this one counts
            snapshot(DAY_START, tally_of(WINDOW[5:]), {"customer.segment": "smb"}),
            (b"stray", b'{"type": "something.else"}'),
        ],
    )
    return topics["METRICS_TOPIC"]


def test_the_table_ranks_themes_by_the_size_of_their_nps_impact(metrics_topic: str, capsys: pytest.CaptureFixture[str]) -> None:
    """test_themes.py's window (the latest): late -58.33, delivery -50.0, billing -3.33."""
    assert main(["report", "themes"]) == EXIT_OK
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith(f"Themes in the 24h window {iso(DAY_START)[:16].replace('T', ' ')} → ")
    assert lines[1] == "10 answer(s), 9 with a comment, 7 mentioning a theme (78% of the comments); NPS +16.7"
    assert lines[3].split() == ["theme", "answers", "of", "comments", "NPS", "impact", "CSAT", "CES", "revenue", "at", "risk"]
    assert [line.split() for line in lines[4:7]] == [
        ["Delivery", "›", "Late", "3", "33%", "-100.0", "-58.33", "0%", "—", "$332.50"],  # 3 of the 9 comments
        ["Delivery", "4", "44%", "-33.3", "-50.00", "0%", "—", "$332.50"],
        ["Billing", "3", "33%", "+0.0", "-3.33", "100%", "5.0", "$380.00"],
    ]
    assert f"note: 1 record(s) on {metrics_topic} are not metric snapshots: skipped" in err


def test_start_and_dimension_pick_the_window(metrics_topic: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--start between two windows: the one starting before. smb: WINDOW[5:]: f, g, h about billing, a about a late
    parcel, b's comment about nothing. f's is the only NPS answer: billing's impact is null (no NPS without it), late's
    and delivery's 0 (none of theirs); a null impact comes last."""
    assert main(["report", "themes", "--start", iso(DAY_START - 1800)]) == EXIT_OK
    assert capsys.readouterr().out.splitlines()[1].startswith("5 answer(s), 5 with a comment, 4 mentioning a theme")
    assert main(["report", "themes", "--dimension", "customer.segment=smb", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["dimension"], report["window"]["start"], report["comments"], report["tagged"]) == (
        {"customer.segment": "smb"},
        iso(DAY_START),
        5,
        4,
    )
    assert [(t["theme"], t["responses"], t["nps_impact"]) for t in report["themes"]] == [
        ("delivery", 1, 0.0),
        ("late", 1, 0.0),
        ("billing", 3, None),
    ]


def test_a_snapshot_from_before_themes_reads_as_none(metrics_topic: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "themes", "--start", iso(DAY_START - 7200)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "2 answer(s), 0 with a comment, 0 mentioning a theme; NPS -100.0"
    assert lines[3] == "No answer in this window mentions a theme."


def test_no_such_window_is_an_error_that_lists_what_there_is(metrics_topic: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "themes", "--window", "7d"]) == EXIT_FAILED
    assert f"error: no snapshot of a 7d window for every customer on {metrics_topic} (window sizes there: 24h)" in capsys.readouterr().err
    assert main(["report", "themes", "--dimension", "customer.segment=enterprise"]) == EXIT_FAILED
    assert "for customer.segment=enterprise" in capsys.readouterr().err
