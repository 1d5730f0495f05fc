"""`feedback-worker report root-causes`: the digest's report for any range, read from FOLLOWUP_TOPIC on the broker."""

from __future__ import annotations

import json

import pytest

from tests.conftest import produce
from tests.tasks.test_diagnose import journeys
from worker.broker import free_port
from worker.cli import EXIT_FAILED, EXIT_OK, main
from worker.keeper import desk as taskdesk

#: test_diagnose's week: Monday 2026-11-16 08:00 UTC to the next Monday.
WEEK = ["--since", "7d", "--until", "2026-11-23T08:00:00Z"]


@pytest.fixture
def followups(kafka_bootstrap: str, topics: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """test_diagnose's tasks as the keeper published them (one record twice, after a crash), and one stray record."""
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "FOLLOWUP_TOPIC", "FEEDBACK_TOPIC", "STATE_TOPIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("FOLLOWUP_TOPIC", topics["FOLLOWUP_TOPIC"])
    records = [record for journey in journeys() for record in journey.records]
    messages = [(r.task_id.encode(), r.model_dump_json().encode()) for r in records]
    messages += [messages[1], (b"stray", b'{"type": "something.else"}')]
    produce(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], messages)
    return topics["FOLLOWUP_TOPIC"]


def test_the_report_prints_both_rankings_examples_and_a_summary(followups: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "root-causes", *WEEK]) == EXIT_OK
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == (
        f"Root causes of tasks resolved 2026-11-16 08:00 → 2026-11-23 08:00 UTC (7d), against the 7d before; 11 task(s) on {followups}"
    )
    table = [line.split() for line in lines[2:11]]
    assert table[1] == ["shipping-delay", "3", "new", "$475.00", "new", "50%", "(1", "of", "2)"]  # c-1 and c-2 × 0.95
    assert table[2] == ["billing-error", "1", "−1", "$1,900.00", "+$1,330.00", "—"]
    assert table[3] == ["product-defect", "1", "±0", "$47.50", "±0", "—"]
    assert [row[0] for row in table[6:9]] == ["billing-error", "shipping-delay", "product-defect"]  # by revenue at risk
    assert "shipping-delay  “Late again, third time.”" in out
    assert "“<!channel> *bold* {{ 7*7 }} <@U0BOSS> & [2Jcleared”" in out and "\x1b" not in out
    assert lines[-1] == (
        "5 task(s) resolved (+1 against the period before), 3 root cause(s), $2,422.50/month at risk, recovery rate 50% (1 of 2 answers)"
    )
    assert f"note: 1 record(s) on {followups} are not task records: skipped" in err


def test_json_has_the_same_figures(followups: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "root-causes", *WEEK, "--top", "2", "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert (report["period"], report["tasks"], report["tasks_before"]) == (
        {"start": "2026-11-16T08:00:00+00:00", "end": "2026-11-23T08:00:00+00:00"},
        5,
        4,
    )
    assert [(c["cause"], c["tasks"], c["recovery_rate"]) for c in report["by_tasks"]] == [
        ("shipping-delay", 3, 50.0),
        ("billing-error", 1, None),
    ]
    assert [c["cause"] for c in report["by_revenue"]] == ["billing-error", "shipping-delay"]


def test_an_unreachable_broker_is_an_error_that_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    address = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", address)
    monkeypatch.setattr(taskdesk, "CONNECT_TIMEOUT_S", 1.0)
    assert main(["report", "root-causes", "--since", "30d"]) == EXIT_FAILED
    assert f"error: cannot reach Kafka at {address} within 1 s" in capsys.readouterr().err
