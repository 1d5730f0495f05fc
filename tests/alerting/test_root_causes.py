"""The root-cause digest in Slack: `templates/root_causes.slack.j2` via `AlertRenderer.render_root_causes`, and its preview."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.alerting.test_template_render import render
from tests.tasks.test_diagnose import BEFORE, HOSTILE, WEEK, report
from worker.alerting import ROOT_CAUSES_TEMPLATE, AlertRenderer
from worker.cli import EXIT_OK, EXIT_USAGE
from worker.tasks import root_cause_report

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def renderer() -> AlertRenderer:
    return AlertRenderer(ROOT / "templates")


def test_the_digest_shows_both_rankings_with_changes_and_recovery(renderer: AlertRenderer) -> None:
    alert = renderer.render_root_causes(report(), "#cx-leads", "Europe/Amsterdam")
    assert alert.channel == "#cx-leads" and alert.template == ROOT_CAUSES_TEMPLATE
    assert alert.text == (
        ":mag: Root causes, 2026-11-16 09:00 – 2026-11-23 09:00 Europe/Amsterdam: 5 tasks resolved; top cause shipping-delay (3)"
    )
    header, totals, by_tasks, by_revenue = alert.blocks[:4]
    assert header["text"]["text"] == "Root causes · 16 Nov – 23 Nov 2026"
    assert totals["text"]["text"] == (
        "*5* tasks resolved (+1 against the period before) · *$1,275.00*/month at risk (+$950.00) · recovery rate 50% (1 of 2)"
    )
    assert by_tasks["text"]["text"].split("\n") == [
        "*Top causes by tasks*",
        "1. *shipping-delay* · 3 tasks (new) · recovery 50% (1 of 2)",
        "2. *billing-error* · 1 task (−1) · recovery —",
        "3. *product-defect* · 1 task (±0) · recovery —",
    ]
    assert by_revenue["text"]["text"].split("\n") == [
        "*Top causes by revenue at risk*",
        "1. *billing-error* · $1,000.00/month (+$700.00) · 1 task",
        "2. *shipping-delay* · $250.00/month (new) · 3 tasks",
        "3. *product-defect* · $25.00/month (±0) · 1 task",
    ]
    assert alert.metadata == {
        "event_type": "feedback_root_causes",
        "event_payload": {
            "period_start": "2026-11-16T08:00:00+00:00",
            "period_end": "2026-11-23T08:00:00+00:00",
            "tasks": 5,
            "open_at_end": 2,  # the two tasks of the sample opened in the period and left unresolved, both overdue
            "overdue_at_end": 2,
            "causes": {"shipping-delay": 3, "billing-error": 1, "product-defect": 1},
            "causes_before": {"shipping-delay": 0, "billing-error": 2, "product-defect": 1},
        },
    }


def test_a_hostile_comment_pings_no_one_formats_nothing_and_runs_no_template_code(renderer: AlertRenderer) -> None:
    alert = renderer.render_root_causes(report(), "#cx-leads")
    shipping = next(b for b in alert.blocks if b["type"] == "context" and b["elements"][0]["text"] == "*shipping-delay*")
    first, second = shipping["elements"][1:]
    assert first == {"type": "plain_text", "emoji": False, "text": "“Late again, third time.”"}
    assert second["type"] == "plain_text"  # not mrkdwn: *bold* is shown as typed, not bold
    assert second["text"] == "“&lt;!channel&gt; *bold* {{ 7*7 }} &lt;@U0BOSS&gt; &amp; \x1b[2Jcleared”"
    everything = json.dumps([alert.text, alert.blocks])
    assert "<!channel>" not in everything and "<@U0BOSS>" not in everything and "49" not in second["text"]
    assert HOSTILE.startswith("<!channel>")  # the comment really was hostile


def test_a_period_without_resolutions_says_so_and_what_is_still_open(renderer: AlertRenderer) -> None:
    alert = renderer.render_root_causes(root_cause_report([], WEEK, BEFORE, 0.95), "#cx-leads")
    assert alert.text.endswith(": no task resolved; 0 still open, 0 overdue")
    assert any(
        b.get("text", {}).get("text") == "No task was resolved in this period. *0* tasks still open when it ended, *0* of them overdue."
        for b in alert.blocks
    )


def test_template_render_previews_the_digest_with_sample_tasks(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text('root_cause_digest: {channel: "#cx-leads", every: 1w, at: "mon 09:00", timezone: Europe/Amsterdam}\n')
    result = render(ROOT_CAUSES_TEMPLATE, "--config", config, "--json")
    assert result.returncode == EXIT_OK, result.stderr
    payload = json.loads(result.stdout)
    assert payload["channel"] == "#cx-leads" and payload["metadata"]["event_type"] == "feedback_root_causes"
    assert "Europe/Amsterdam" in payload["text"] and "top cause shipping-delay (3)" in payload["text"]
    assert "09:00 – " in payload["text"]  # the last period the schedule would post, from Monday 09:00
    assert "note: rendered for sample tasks" in result.stderr


def test_other_templates_still_need_an_event() -> None:
    result = render("detractor.slack.j2")
    assert result.returncode == EXIT_USAGE
    assert "error: give --event FILE: detractor.slack.j2 renders an alert for an event" in result.stderr
