"""`feedback-worker template render NAME --event e.json`: an alert as it would be posted, before a customer triggers it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from worker.cli import EXIT_OK, EXIT_USAGE
from worker.tasks import task_id_for

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = 'Hey <!channel> ping <@U123> {{ 7*7 }} "quoted" & co\nik wil mijn geld terug'
EVENT = {
    "event_id": "f-123",
    "occurred_at": "2026-11-24T10:00:00+00:00",
    "survey": "nps",
    "score": 2,
    "comment": HOSTILE,
    "customer": {"id": "c-42", "name": "Purrfect Prints", "segment": "smb", "monthly_value": 100.0},
    "channel": "email",
    "touchpoint": "support",
}


def render(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_", "RULES_", "TEMPLATES_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "template", "render", *map(str, args)],
        cwd=ROOT,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def event_file(tmp_path: Path) -> Path:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(EVENT, indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def texts(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_json_is_the_chat_post_message_call_with_the_hostile_comment_escaped(event_file: Path) -> None:
    result = render("detractor.slack.j2", "--event", event_file, "--json")
    assert result.returncode == EXIT_OK, result.stderr
    payload = json.loads(result.stdout)
    assert payload["channel"] == "#cx-alerts"
    assert payload["metadata"] == {
        "event_type": "feedback_alert",
        "event_payload": {"event_id": "f-123", "task_id": task_id_for("f-123"), "rule_id": "nps-detractor", "severity": "high"},
    }
    comment = next(b["text"]["text"] for b in payload["blocks"] if b["type"] == "section" and "text" in b and "ping" in b["text"]["text"])
    assert comment == '“Hey &lt;!channel&gt; ping &lt;@U123&gt; {{ 7*7 }} "quoted" &amp; co\nik wil mijn geld terug”'
    assert "<!channel>" not in result.stdout and "<@U123>" not in result.stdout
    assert "49" not in comment  # {{ 7*7 }} not evaluated (elsewhere a due time at :49 holds "49")
    assert payload["text"] == ":red_circle: HIGH: Purrfect Prints would not recommend us: NPS 2/10 · detractor · smb"
    assert (payload["unfurl_links"], payload["unfurl_media"]) == (False, False)
    assert "Matched: nps-detractor, churn-words · event f-123" in texts(payload["blocks"])


def test_the_readable_form_names_the_owner_and_ends_with_the_text_fallback(event_file: Path) -> None:
    result = render("detractor.slack.j2", "--event", event_file)
    assert result.returncode == EXIT_OK, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "# chat.postMessage · template detractor.slack.j2 · rule nps-detractor (high) owns · matched: nps-detractor, churn-words"
    )
    assert lines[-2:] == [
        "# text fallback (notifications, clients without Block Kit):",
        ":red_circle: HIGH: Purrfect Prints would not recommend us: NPS 2/10 · detractor · smb",
    ]
    assert json.loads("\n".join(lines[1:-3]))["metadata"]["event_payload"]["rule_id"] == "nps-detractor"
    assert result.stderr == ""


def test_rule_picks_the_owner_and_says_who_would_own_otherwise(event_file: Path) -> None:
    result = render("alert.slack.j2", "--event", event_file, "--rule", "churn-words", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    payload = json.loads(result.stdout)
    assert payload["channel"] == "#cx-retention"
    assert payload["metadata"]["event_payload"]["rule_id"] == "churn-words"
    assert "retention ·" in texts(payload["blocks"])  # the owner of the forced rule
    assert result.stderr.splitlines() == ["note: without --rule, 'nps-detractor' would own this event"]


def test_a_rule_that_does_not_match_renders_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "promoter.json"
    path.write_text(json.dumps(EVENT | {"score": 10, "comment": "Great service"}))
    result = render("alert.slack.j2", "--event", path, "--rule", "low-csat", "--json")
    assert result.returncode == EXIT_OK, result.stderr
    assert "note: rule 'low-csat' does not match this event; rendered as if it did" in result.stderr
    nothing = render("alert.slack.j2", "--event", path)
    assert nothing.returncode == EXIT_USAGE
    assert nothing.stderr.startswith(
        "error: no rule matches this event, so the worker would send no alert; give --rule ID to render it anyway (rules: nps-detractor,"
    )


def test_own_rules_and_templates_and_the_default_channel(tmp_path: Path, event_file: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: everything\n    when: {survey: nps}\n    alert: {template: mine.slack.j2}\n")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "mine.slack.j2").write_text('{"text": "{{ rule.id }} for {{ customer.name }}: {{ comment }}", "blocks": []}')
    result = render(
        "mine.slack.j2",
        "--event",
        event_file,
        "--rules",
        rules,
        "--templates",
        templates,
        "--json",
        env={"SLACK_DEFAULT_CHANNEL": "#cx-fallback"},
    )
    assert result.returncode == EXIT_OK, result.stderr
    payload = json.loads(result.stdout)
    assert payload["channel"] == "#cx-fallback"
    assert (
        payload["text"]
        == 'everything for Purrfect Prints: Hey &lt;!channel&gt; ping &lt;@U123&gt; {{ 7*7 }} "quoted" &amp; co\nik wil mijn geld terug'
    )
    assert payload["blocks"] == []


# -- errors --------------------------------------------------------------------------------------


def test_a_missing_template_lists_the_available_ones(event_file: Path) -> None:
    result = render("detractor.slak.j2", "--event", event_file)
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert result.stderr.startswith(
        "error: template 'detractor.slak.j2' not found in templates (available: alert.slack.j2, detractor.slack.j2"
    )


def test_an_invalid_event_names_each_field_and_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        '{"event_id": "f-1",\n "occurred_at": "2026-11-24T10:00:00",\n "survey": "nps",\n "score": 11,\n "customer": {\n   "id": ""}}\n'
    )
    result = render("alert.slack.j2", "--event", path)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.splitlines() == [
        "error: invalid event (the worker would send it to the DLQ):",
        f"  {path}:2: occurred_at: Input should have timezone info",
        f"  {path}:4: score: 11 is outside the nps range 0-10",
        f"  {path}:6: customer.id: String should have at least 1 character",
    ]


def test_a_file_that_is_not_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"event_id": "f-1",\n "score": 3,,\n}')
    result = render("alert.slack.j2", "--event", path)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.strip() == f"error: {path}:2: not valid JSON: Expecting property name enclosed in double quotes (column 13)"
    missing = render("alert.slack.j2", "--event", path.with_name("nowhere.json"))
    assert missing.returncode == EXIT_USAGE
    assert "nowhere.json: cannot read the event file" in missing.stderr


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("nps-detracter", "error: unknown rule 'nps-detracter' (rules: nps-detractor, "),
        ("enterprise-nps-drop", "error: 'enterprise-nps-drop' is a metric rule: its alerts render from snapshots, not events"),
    ],
)
def test_an_unknown_or_metric_rule_is_refused(event_file: Path, rule: str, message: str) -> None:
    result = render("alert.slack.j2", "--event", event_file, "--rule", rule)
    assert result.returncode == EXIT_USAGE
    assert result.stderr.startswith(message)
    assert result.stdout == ""
