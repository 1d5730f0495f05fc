"""Slack alerts rendered from the shipped templates: complete, and safe with hostile customer text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from worker.alerting import Alert, AlertRenderer, TemplateRenderError
from worker.events import FeedbackEvent
from worker.rules import RuleSet, load_rules
from worker.tasks import open_task

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ("alert.slack.j2", "detractor.slack.j2")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
HEARD = ["Hear", "Empathize", "Apologize", "Resolve", "Diagnose"]

# Everything a customer could type to ping a channel, forge a link, inject template syntax
# or break out of the JSON string the value lands in.
HOSTILE_COMMENT = (
    "Hey <!channel> and <!here>, ping <@U123>! <https://evil.example|click> {{ 7*7 }} "
    '{% raw %}x{% endraw %} "quoted" \\back\\slash\nsecond line & co </script> "}]}, {"type": "section", "text": "x'
)
HOSTILE_NAME = 'Evil <!here> "Co" & {{ 7*7 }} \\ {% raw %}'


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return load_rules(ROOT / "rules", ROOT / "templates")


@pytest.fixture(scope="module")
def renderer() -> AlertRenderer:
    return AlertRenderer(ROOT / "templates")


def make_event(**fields: Any) -> FeedbackEvent:
    event = {
        "event_id": "evt-0001",
        "occurred_at": "2026-11-24T09:58:00+00:00",
        "survey": "nps",
        "score": 3,
        "comment": "The courier left the parcel in the rain.",
        "customer": {"id": "c-42", "name": "Purrfect Prints", "segment": "smb", "monthly_value": 250.0},
        "channel": "email",
        "touchpoint": "delivery",
    }
    return FeedbackEvent.model_validate(event | fields)


def render_alert(renderer: AlertRenderer, rules: RuleSet, template: str, event: FeedbackEvent, channel: str = "#cx-alerts") -> Alert:
    """What the worker does for a matching event: open the task, render the alert."""
    match = rules.evaluate(event)
    assert match is not None, "the test event should match a shipped rule"
    rule = match.owner
    task = open_task(event, rule.id, match.rule_ids, rule.severity, rule.followup, NOW)
    return renderer.render(template, channel, event, match, task)


def strings(value: Any) -> list[str]:
    """Every string anywhere in a JSON-like value (block texts, fields, elements...)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """The visible texts of the blocks, in order."""
    texts = []
    for block in blocks:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [field["text"] for field in block.get("fields", [])]
        texts += [element["text"] for element in block.get("elements", []) if "text" in element]
    return texts


def heard_block(alert: Alert) -> str:
    return next(t for t in block_texts(alert.blocks) if "HEARD" in t)


def comment_block(alert: Alert) -> str:
    return next(b["text"]["text"] for b in alert.blocks if b["type"] == "section" and b.get("text", {}).get("type") == "plain_text")


@pytest.mark.parametrize("template", TEMPLATES)
def test_alert_shows_what_the_agent_needs(renderer, rules, template):
    event = make_event()
    alert = render_alert(renderer, rules, template, event)
    visible = "\n".join(block_texts(alert.blocks))

    assert alert.rule_id == "nps-detractor" and alert.severity == "high"
    assert alert.channel == "#cx-alerts" and alert.template == template
    # Block Kit: a header, then sections and a context line.
    assert alert.blocks[0] == {"type": "header", "text": {"type": "plain_text", "text": "HIGH · NPS detractor"}}
    assert {b["type"] for b in alert.blocks} <= {"header", "section", "context", "divider", "actions"}
    # Customer, survey and score in words, comment, owner and due time.
    assert "*Customer*\nPurrfect Prints (c-42)" in visible
    assert "*Segment · value*\nsmb · $250.00/month" in visible
    assert "*Answer*\nNPS 3/10 · detractor" in visible
    assert "*Owner · due*\ncx-oncall · 2026-11-25 10:00 UTC" in visible  # opened 10:00 + 24h
    assert comment_block(alert) == "“The courier left the parcel in the rain.”"
    assert "evt-0001" in visible and "email" in visible and "delivery" in visible
    # HEARD checklist: the five steps, in order, with the task id and guidance.
    checklist = heard_block(alert)
    assert alert.task_id in checklist
    assert re.findall(r"☐ \*(\w+)\*: \S", checklist) == HEARD
    assert "Let them tell the full story" in checklist
    # Plain-text fallback for notifications: severity, who, score.
    assert alert.text.startswith(":red_circle: HIGH: ")
    assert "Purrfect Prints" in alert.text and "NPS 3/10 · detractor" in alert.text
    assert "\n" not in alert.text
    # Slack message metadata, so replies and workflows can find the event and task.
    assert alert.metadata == {
        "event_type": "feedback_alert",
        "event_payload": {"event_id": "evt-0001", "task_id": alert.task_id, "rule_id": "nps-detractor", "severity": "high"},
    }
    assert alert.task_id.startswith("task-")


def test_default_template_summary_names_the_rule(renderer, rules):
    alert = render_alert(renderer, rules, "alert.slack.j2", make_event())
    assert alert.text == ":red_circle: HIGH: NPS detractor · Purrfect Prints · NPS 3/10 · detractor"


def test_detractor_template_extends_the_default_with_its_own_summary(renderer, rules):
    default = render_alert(renderer, rules, "alert.slack.j2", make_event())
    detractor = render_alert(renderer, rules, "detractor.slack.j2", make_event())
    assert detractor.text == ":red_circle: HIGH: Purrfect Prints would not recommend us: NPS 3/10 · detractor · smb"
    assert detractor.blocks[1]["text"]["text"] == ":red_circle: Purrfect Prints would not recommend us: NPS 3/10 · detractor · smb"
    # Everything but the summary section is the default alert's.
    assert detractor.blocks[:1] + detractor.blocks[2:] == default.blocks[:1] + default.blocks[2:]


def test_rule_guidance_overrides_and_other_surveys_in_words(renderer, rules):
    event = make_event(survey="ces", score=5, comment=None)
    alert = render_alert(renderer, rules, "alert.slack.j2", event)
    assert alert.rule_id == "high-effort"
    assert "*Answer*\nCES 5/5 · high effort" in block_texts(alert.blocks)
    checklist = heard_block(alert)
    assert re.findall(r"☐ \*(\w+)\*", checklist) == HEARD
    assert "☐ *Diagnose*: Map the steps the customer had to take" in checklist
    # No comment: no empty comment section.
    assert not any(b.get("text", {}).get("type") == "plain_text" and b["type"] == "section" for b in alert.blocks)


@pytest.mark.parametrize("template", TEMPLATES)
def test_customer_with_only_an_id_renders_placeholders(renderer, rules, template):
    event = make_event(customer={"id": "c-7"}, comment=None, channel=None, touchpoint=None)
    alert = render_alert(renderer, rules, template, event)
    visible = block_texts(alert.blocks)
    assert "*Customer*\n— (c-7)" in visible
    assert "*Segment · value*\n— · —/month" in visible
    assert "c-7" in alert.text
    assert "unknown channel" in visible[-1]


@pytest.mark.parametrize("template", TEMPLATES)
def test_hostile_customer_text_is_escaped_and_never_evaluated(renderer, rules, template):
    event = make_event(
        comment=HOSTILE_COMMENT,
        customer={"id": "c-<@U999>", "name": HOSTILE_NAME, "segment": "<!channel>", "monthly_value": 100.0},
        channel="<@U123>",
        touchpoint="{{ 7*7 }}",
    )
    benign = render_alert(renderer, rules, template, make_event())
    alert = render_alert(renderer, rules, template, event)

    # The JSON held: the comment did not add, remove or reshape any block.
    assert [b["type"] for b in alert.blocks] == [b["type"] for b in benign.blocks]
    assert [sorted(b) for b in alert.blocks] == [sorted(b) for b in benign.blocks]
    # Exactly the customer's characters, Slack-escaped: quotes, backslashes, newline intact.
    expected_comment = (
        "Hey &lt;!channel&gt; and &lt;!here&gt;, ping &lt;@U123&gt;! &lt;https://evil.example|click&gt; {{ 7*7 }} "
        '{% raw %}x{% endraw %} "quoted" \\back\\slash\nsecond line &amp; co &lt;/script&gt; "}]}, {"type": "section", "text": "x'
    )
    assert comment_block(alert) == f"“{expected_comment}”"
    name = 'Evil &lt;!here&gt; "Co" &amp; {{ 7*7 }} \\ {% raw %}'
    assert f"*Customer*\n{name} (c-&lt;@U999&gt;)" in block_texts(alert.blocks)
    assert "*Segment · value*\n&lt;!channel&gt; · $100.00/month" in block_texts(alert.blocks)
    assert name in alert.text  # the summary reused in the fallback is escaped once, not twice

    everything = strings(alert.text) + strings(alert.blocks) + strings(alert.metadata)
    for text in everything:
        assert "<" not in text and ">" not in text, f"raw Slack control character in {text!r}"
        assert "&amp;amp;" not in text and "&amp;lt;" not in text, f"escaped twice: {text!r}"
    joined = "\n".join(everything).replace(alert.task_id, "")
    assert "49" not in joined, "template syntax in customer data was evaluated"
    assert "{{ 7*7 }}" in comment_block(alert) and "{% raw %}" in comment_block(alert)
    # And it serialises for Slack as-is.
    assert json.loads(json.dumps({"text": alert.text, "blocks": alert.blocks})) == {"text": alert.text, "blocks": alert.blocks}


def test_customer_text_cannot_become_markup_even_through_filters(tmp_path):
    # A template author reaching for `safe` or building strings still cannot unescape customer text.
    (tmp_path / "careless.slack.j2").write_text(
        '{"text": "{{ comment | safe }} {{ comment | upper }} {{ \'<\' ~ comment }}", "blocks": []}', encoding="utf-8"
    )
    text, blocks = AlertRenderer(tmp_path).render_json("careless.slack.j2", {"comment": "<!channel> & co"})
    assert "<" not in text and ">" not in text
    assert text.startswith("&lt;!channel&gt; &amp; co &lt;!CHANNEL&gt;")
    assert blocks == []


def _write(tmp_path: Path, name: str, source: str) -> AlertRenderer:
    (tmp_path / name).write_text(source, encoding="utf-8")
    return AlertRenderer(tmp_path)


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "''.__class__.__mro__[1].__subclasses__()",
        "customer.__class__.__init__.__globals__",
        "cycler.__init__.__globals__",
        "'{0.__class__.__mro__}'.format(comment)",
        "event.__dict__",
    ],
    ids=["mro", "subclasses", "globals-via-model", "globals-via-cycler", "str.format", "dunder-dict"],
)
def test_sandbox_stops_unsafe_templates(tmp_path, rules, expression):
    renderer = _write(tmp_path, "evil.slack.j2", '{"text": "{{ ' + expression + ' }}", "blocks": []}')
    with pytest.raises(TemplateRenderError, match=r"^evil\.slack\.j2") as raised:
        render_alert(renderer, rules, "evil.slack.j2", make_event())
    assert "Security" in str(raised.value) or "unsafe" in str(raised.value)


@pytest.mark.parametrize(
    "source, why",
    [
        ('{"text": "{{ comment }}" "blocks": []}', "not valid JSON"),  # a missing comma
        ('{"text": {{ comment }}, "blocks": []}', "not valid JSON"),  # a value outside quotes
        ('{"text": "{{ comment }}", "blocks": [],}', "not valid JSON"),
        ('["{{ comment }}"]', "must render an object"),
        ('{"blocks": []}', "must render an object"),
        ('{"text": "x", "blocks": {"type": "section"}}', "must render an object"),
    ],
    ids=["missing-comma", "unquoted-value", "trailing-comma", "array", "no-text", "blocks-not-a-list"],
)
def test_template_rendering_bad_json_is_a_render_error_naming_the_template(tmp_path, rules, source, why):
    renderer = _write(tmp_path, "broken.slack.j2", source)
    with pytest.raises(TemplateRenderError, match=r"^broken\.slack\.j2") as raised:
        render_alert(renderer, rules, "broken.slack.j2", make_event())
    assert why in str(raised.value)


@pytest.mark.parametrize(
    "source, why",
    [
        ('{"text": "{% if comment %}", "blocks": []}', "TemplateSyntaxError"),
        ('{"text": "{{ no_such_variable }}", "blocks": []}', "UndefinedError"),
        ('{"text": "{{ customer.no_such_field }}", "blocks": []}', "UndefinedError"),
        ('{% extends "missing.slack.j2" %}', "missing.slack.j2"),
        # Errors that only data can trigger, after the start-up check passed with a sample event:
        ('{"text": "{{ customer.monthly_value * 12 }}", "blocks": []}', "TypeError"),
        ('{"text": "{{ 100 // (event.score - 3) }}", "blocks": []}', "ZeroDivisionError"),
        ('{"text": "{{ range(event.score * 10000000) | list | length }}", "blocks": []}', "OverflowError"),
    ],
    ids=["syntax", "undefined-variable", "undefined-field", "missing-parent", "none-times-int", "division-by-zero", "sandbox-range-limit"],
)
def test_template_errors_are_render_errors_naming_the_template(tmp_path, rules, source, why):
    renderer = _write(tmp_path, "faulty.slack.j2", source)
    event = make_event(customer={"id": "c-9"})  # no monthly_value; score 3
    with pytest.raises(TemplateRenderError, match=r"^faulty\.slack\.j2") as raised:
        render_alert(renderer, rules, "faulty.slack.j2", event)
    assert why in str(raised.value)


def test_missing_template_is_a_render_error(renderer, rules):
    with pytest.raises(TemplateRenderError, match="nope.slack.j2"):
        render_alert(renderer, rules, "nope.slack.j2", make_event())


@pytest.mark.parametrize("template", ["alert.slack.j2", "detractor.slack.j2"])
def test_a_long_hostile_comment_still_fits_slacks_block_limit(renderer, rules, template):
    # `&` grows to five characters once escaped: cutting before escaping is not enough.
    event = make_event(comment="&<>" * 2000)
    alert = render_alert(renderer, rules, template, event)
    text = comment_block(alert)
    assert len(text) <= 3000  # Slack's limit for a section's text
    assert text.endswith("…”") and "&amp;&lt;&gt;" in text
