"""`themes:` in rules files and `comment.themes` in a rule's `when:`: loaded with file:line, matched per language.

The matching itself (stems, phrases, accents, language detection) is tested in tests/themes; here, what ops
see: a mistake named with its file and line, a rule that fires on a theme in each language, a parent theme
that fires for its children, and what the worker makes of an answer (the task's themes, the alert's labels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_for
from tests.fake_slack import FakeSlack
from tests.harness import NOW, ROOT
from worker.events import FeedbackEvent
from worker.rules import RulesError, load_rules

THEMES = """\
themes:
  - id: delivery
    label: Delivery
  - id: shipping-delay
    label: Shipping delay
    parent: delivery
    terms:
      en: [late, delay, "never arrived"]
      nl: [vertraging, "te laat"]
      et: [hilinemine, hilines]
      de: [verspätung, "zu spät"]
      es: [retraso, "no llegó"]
      any: [PostNL]
  - id: refund
    label: Refund
    terms:
      en: [refund]
      es: [reembolso]
"""

RULES = """\
rules:
  - id: late
    when: {comment.themes: shipping-delay}
    severity: medium
  - id: any-delivery
    when: {comment.themes: {contains: delivery}}
    severity: low
  - id: money
    when: {comment.themes: {contains_any: [refund, shipping-delay]}, survey: csat}
    severity: high
  - id: untagged
    when: {comment: {exists: true}, comment.themes: {exists: false}}
    severity: info
"""


def answer(comment: str | None, language: str | None = None, survey: str = "nps", score: int = 3) -> FeedbackEvent:
    return FeedbackEvent.model_validate(
        {
            "event_id": "e-1",
            "occurred_at": NOW.isoformat(),
            "survey": survey,
            "score": score,
            "comment": comment,
            "language": language,
            "customer": {"id": "c-1"},
        }
    )


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    (tmp_path / "a-themes.yaml").write_text(THEMES)
    (tmp_path / "b-rules.yaml").write_text(RULES)
    return tmp_path


def matched(rules_dir: Path, event: FeedbackEvent) -> list[str]:
    match = load_rules(rules_dir).evaluate(event)
    return match.rule_ids if match else []


@pytest.mark.parametrize(
    ("comment", "language"),
    [
        ("My parcel arrived LATE", "en"),
        ("The parcel never arrived.", "en"),
        ("De bestelling kwam weer te laat", "nl"),
        ("Tarne hilines kaks päeva", "et"),
        ("Die Lieferung kam viel zu spät", "de"),
        ("El pedido no llegó a tiempo", "es"),
        ("Vertragingen, steeds weer vertragingen", "nl"),  # a plural: the stem of 'vertraging'
        ("Verspätungen jede Woche", "de"),
        ("Bezorgd door PostNL, een ramp", None),  # `any`: whatever the language
        ("my parcel arrived late", None),  # no language given: decided among the themes' five
    ],
)
def test_a_rule_on_a_theme_fires_in_each_language_and_its_parent_theme_with_it(rules_dir: Path, comment: str, language: str) -> None:
    assert matched(rules_dir, answer(comment, language)) == ["late", "any-delivery"]


def test_contains_any_exists_and_a_comment_without_a_theme(rules_dir: Path) -> None:
    assert matched(rules_dir, answer("Quiero un reembolso", "es", survey="csat", score=1)) == ["money"]
    assert matched(rules_dir, answer("Lovely people", "en")) == ["untagged"]
    assert matched(rules_dir, answer(None)) == []
    # The theme is not decided by the comment's language alone: a Dutch word in an English comment is no match.
    assert matched(rules_dir, answer("it came te laat", "en")) == ["untagged"]


def test_mistakes_in_themes_and_in_comment_themes_are_named_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(THEMES + "  - id: delivery\n    label: Again\n")
    (tmp_path / "b.yaml").write_text(
        "themes:\n  - id: billing\n    label: Billing\n    parent: invoices\n"
        "  - id: bills\n    label: Bills\n    terms: {xx: [bill]}\n"
        "rules:\n  - id: r\n    when: {comment.themes: {contains: shipping-dely}}\n"
        "  - id: s\n    when: {comment.themes: {matches: 'late'}}\n"
    )
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path)
    lines = [str(e) for e in caught.value.errors]
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    assert any(line.startswith(f"{a}:19:") and "duplicate theme id 'delivery'" in line and f"{a}:2" in line for line in lines), lines
    assert any(line.startswith(f"{b}:4:") and "'invoices'" in line for line in lines), lines
    assert any(line.startswith(f"{b}:7:") and "'xx'" in line for line in lines), lines
    assert any(line.startswith(f"{b}:10:") and "unknown theme 'shipping-dely'" in line and "shipping-delay" in line for line in lines), (
        lines
    )
    assert any(line.startswith(f"{b}:12:") and "contains_any" in line for line in lines), lines
    assert len(lines) == 5, lines


def test_a_route_cannot_test_themes_and_says_so(tmp_path: Path) -> None:
    from worker.notation import LineDict, Location, Problems, load_yaml
    from worker.rules import compile_condition

    path = tmp_path / "route.yaml"
    path.write_text("when: {comment.themes: delivery}\n")
    node = load_yaml(path)
    assert isinstance(node, LineDict)
    problems = Problems()
    assert compile_condition(node["when"], Location(str(path), 1), "routes[0].when", problems) is None
    assert "comment themes are known to a rule's `when:` only" in str(problems.ordered([str(path)])[0])


def test_the_task_carries_the_themes_and_language_and_the_alert_shows_their_labels(start_harness: Any, fake_slack: FakeSlack) -> None:
    harness = start_harness()  # the shipped rules and themes (rules/themes.yaml)
    comment = "De levering was weer te laat en de doos was kapot"
    harness.send(
        json.dumps(
            {
                "event_id": "e-themes",
                "occurred_at": harness.clock().isoformat(),
                "survey": "nps",
                "score": 2,
                "comment": comment,
                "customer": {"id": "c-9", "name": "Bakkerij Bol"},
            }
        ).encode()
    )
    topic = harness.settings.followup_topic
    opened = wait_for(lambda: [r for r in harness.records(topic) if r.get("type") == "followup.opened"], 30, "followup.opened")
    assert opened[0]["themes"] == ["damaged-goods", "delivery", "shipping-delay"]
    assert opened[0]["language"] == "nl"  # decided by the worker: the event had none
    message = wait_for(lambda: [m for m in fake_slack.messages if "Bakkerij Bol" in json.dumps(m)], 30, "the alert")
    text = json.dumps(message[0]["blocks"], ensure_ascii=False)
    assert "Delivery › Shipping delay · Delivery › Damaged goods" in text


def test_the_shipped_rules_and_themes_load_and_every_theme_is_used_by_a_demo_comment() -> None:
    from worker.demo.samples import NEGATIVE, NEUTRAL, POSITIVE

    rules = load_rules(ROOT / "rules")
    assert len(rules.themes) >= 10 and set(rules.themes.languages) == {"en", "nl", "et", "de", "es"}
    seen: set[str] = set()
    for comment in [c for c in NEGATIVE + NEUTRAL + POSITIVE if c]:
        data = answer(comment).model_dump()
        rules.tag(data)
        seen |= data["themes"]
    assert len(seen) >= 12, sorted(set(rules.themes.ids) - seen)
