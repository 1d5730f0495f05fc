"""Metric rules: validated like event rules, and firing once per drop (in-process: tests/harness.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import event_bytes, wait_for
from tests.fake_slack import FakeSlack
from tests.harness import Harness
from worker.config import ConfigError, load_settings
from worker.loop.startup import load_checked
from worker.rules import RulesError, load_rules

ROOT = Path(__file__).resolve().parents[2]

DROP_RULE = """\
rules:
  - id: nps-drop
    description: NPS over the last 24h is below zero
    when:
      metric: nps.score
      window: 24h
      lt: 0
      min_responses: 10
    severity: high
    followup: {owner: cx-leads}
    alert: {channel: "#cx-leads"}
"""


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    with pytest.raises(RulesError) as caught:
        load_rules(path, ROOT / "templates")
    return [str(e) for e in caught.value.errors]


def test_metric_rules_load_beside_event_rules() -> None:
    rules = load_rules(ROOT / "rules", ROOT / "templates")
    (rule,) = [r for r in rules.metric_rules if r.id == "enterprise-nps-drop"]
    assert rule.condition.describe() == "nps.score < 0 over 24h (customer.segment=enterprise)"
    assert rule.template == "metric.slack.j2" and rule.channel == "#cx-leads"
    assert "enterprise-nps-drop" not in [r.id for r in rules.rules]  # never evaluated against single events


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ("{metric: nps.scor, window: 24h, lt: 0}", "when.metric: unknown metric 'nps.scor'"),
        ("{metric: nps.score, window: 24h}", "give at least one comparison"),
        ("{metric: nps.score, window: 24 hours, lt: 0}", "when.window: bad duration"),
        ("{metric: nps.score, window: 24h, lt: low}", "when.lt: Input should be a valid number"),
        ("{metric: nps.score, window: 24h, lt: 0, dimension: {customer.sgment: smb}}", "unknown field path 'customer.sgment'"),
        ("{metric: nps.score, window: 24h, below: 0}", "when.below: unknown key"),
    ],
)
def test_metric_rule_mistakes_name_file_line_and_key(tmp_path: Path, when: str, message: str) -> None:
    (error,) = _errors(tmp_path, f"rules:\n  - id: m\n    when: {when}\n")
    assert error.startswith(f"{tmp_path / 'rules.yaml'}:3: rule 'm': ")
    assert message in error


def test_a_window_or_dimension_the_worker_does_not_compute_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(DROP_RULE.replace("window: 24h", "window: 2h").replace("lt: 0", "lt: 0\n      dimension: {channel: sms}"))
    settings = load_settings(None, environ={}, rules_path=path, templates_path=ROOT / "templates")
    with pytest.raises(ConfigError) as caught:
        load_checked(settings)
    assert f"{path}:2: rule 'nps-drop': window 2h is not a configured metrics window (configured: 1h, 24h, 7d)" in str(caught.value)
    assert "dimension channel is not configured (metrics.dimensions: customer.segment)" in str(caught.value)


def test_a_metric_rule_fires_once_per_drop_and_again_only_after_recovery(
    start_harness: Callable[..., Harness], fake_slack: FakeSlack, tmp_path: Path
) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("metrics:\n  emit_every: 1s\n")
    worker = start_harness(DROP_RULE, config=config)
    now = datetime.now(UTC)
    sent = 0

    def send(score: int, count: int) -> None:
        nonlocal sent
        for _ in range(count):
            sent += 1
            at = (now - timedelta(minutes=10) + timedelta(seconds=sent)).isoformat()
            worker.send(event_bytes(score=score, occurred_at=at, customer={"id": f"c-{sent}"}), key=b"k")

    def metric_alerts() -> list[dict]:
        return [m for m in list(fake_slack.messages) if m.get("metadata", {}).get("event_type") == "feedback_metric_alert"]

    def counted(responses: int) -> bool:  # the current 24h overall window has seen every answer so far
        latest = {r["key"].decode(): r for r in worker.records(worker.settings.metrics_topic)}  # the latest record per key wins
        return any(k.startswith("24h|") and k.endswith("|*") and s["responses"] == responses for k, s in latest.items())

    send(score=0, count=12)  # NPS -100 on 12 answers: fires
    wait_for(lambda: len(metric_alerts()) == 1, 30, "the first metric alert")
    send(score=2, count=8)  # still below zero: no second alert
    wait_for(lambda: counted(20), 30, "a snapshot with 20 responses")
    send(score=10, count=40)  # (40 - 20) / 60 = +33: recovered, re-armed, silent
    wait_for(lambda: counted(60), 30, "a snapshot with 60 responses")
    assert len(metric_alerts()) == 1
    send(score=0, count=50)  # (40 - 70) / 110 = -27: a new drop, a new alert
    wait_for(lambda: len(metric_alerts()) == 2, 30, "the second metric alert")
    wait_for(lambda: counted(110), 30, "a snapshot with 110 responses")

    assert len(metric_alerts()) == 2
    first, second = metric_alerts()
    assert first["channel"] == "#cx-leads"
    payload = first["metadata"]["event_payload"]
    assert payload["rule_id"] == "nps-drop" and payload["metric"] == "nps.score" and payload["window"]["size"] == "24h"
    assert payload["value"] == -100.0
    assert second["metadata"]["event_payload"]["value"] < 0
    shown = json.dumps(first["blocks"], ensure_ascii=False)
    assert "nps.score = *-100.0* ± 0.0" in shown  # the figure with its margin of error
    responses = re.search(r"\*Responses\*\\n(\d+) of (\d+) in the window", shown)
    assert responses and responses[1] == responses[2] and int(responses[1]) >= 10  # min_responses respected
    assert "24h: " in shown and " → " in shown  # the window
