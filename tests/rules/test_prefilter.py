"""The rule set's hot path gives the same answers as checking every rule's `when:` in full.

RuleSet specialises each rule for every (survey, score) and compiles what is left
(rules/model.py, rules/compiled.py); the worker evaluates EventData (events.event_data), the
backtest and `rules check` a FeedbackEvent. For every event below, all three must agree with
the plain reading of the rules: every rule whose `when:` holds, in file order.
"""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.rules.test_conditions import MISSING_CASES, OPERATOR_CASES
from worker.demo import FeedbackGenerator
from worker.events import VALID_SCORES, FeedbackEvent
from worker.rules import RuleSet, load_rules
from worker.rules.compiled import matcher
from worker.rules.conditions import Not
from worker.rules.conditions import Test as FieldTest  # a name pytest would try to collect

CONDITIONS = (
    [c for c, _, _ in OPERATOR_CASES]
    + [c for c, _ in MISSING_CASES]
    + [
        "not: {survey: nps, score: {lte: 6}}",
        "any: [{survey: csat, score: {lte: 2}}, {survey: nps, score: 0}, {customer.segment: enterprise}]",
        "all: [{score: {gte: 4}}, {not: {survey: nps}}, {any: [{channel: sms}, {comment: {exists: false}}]}]",
        "{survey: ces, score: {gte: 4, lte: 4}, attributes.tier: {in: [1, gold, true]}}",
        "attributes.vip: true",
        "attributes.tier: {ne: 1}",
        "attributes.tier: {not_in: [gold, 2]}",
        "customer.monthly_value: {lt: 1000}",
        "occurred_at: {gte: '2026-11-24T09:00:00+00:00'}",
        "not: {any: [{score: {gt: 3}}, {not: {comment: {contains_any: [late, refund]}}}]}",
    ]
)


def rules_file(tmp_path: Path) -> RuleSet:
    """One rule per condition above, in this order, with severities that make ownership vary."""
    lines = ["rules:"]
    for index, condition in enumerate(CONDITIONS):
        body = textwrap.indent(condition, " " * 6)
        severity = ["low", "medium", "high", "critical"][index % 4]
        lines.append(f"  - id: r{index}\n    severity: {severity}\n    when:\n{body}")
    path = tmp_path / "rules.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_rules(path)


def events() -> list[FeedbackEvent]:
    """Every valid survey and score, crossed with fields present, absent and of odd types; and the demo's mix."""
    variants: list[dict[str, Any]] = [
        {},
        {"comment": "The delivery was late, I want a refund", "channel": "sms", "customer": {"segment": "enterprise"}},
        {"comment": "", "channel": "email", "customer": {"segment": "smb", "monthly_value": 1000.0}},
        {"comment": "Calling my LAWYER about the REFUND", "attributes": {"tier": 1, "vip": True}},
        {"attributes": {"tier": True, "vip": 1}, "occurred_at": "2026-11-24T08:59:59+00:00"},
        {"attributes": {"tier": "gold", "vip": "true"}, "customer": {"monthly_value": 999.5}},
        {"attributes": {"tier": [1], "vip": None}, "comment": "I CANCELLED the plan"},
    ]
    made = []
    for (survey, score), extra in itertools.product(sorted(VALID_SCORES), variants):
        data = {"event_id": "e", "occurred_at": "2026-11-24T10:00:00+00:00", "survey": survey, "score": score, "customer": {"id": "c"}}
        data |= {k: v for k, v in extra.items() if k != "customer"}
        data["customer"] = data["customer"] | extra.get("customer", {})
        made.append(FeedbackEvent.model_validate(data))
    generator = FeedbackGenerator(seed=11)
    made += [FeedbackEvent.model_validate(generator.event(n)) for n in range(500)]
    return made


def answer(rules: RuleSet, event: FeedbackEvent) -> tuple[str | None, list[str]]:
    match = rules.evaluate(event)
    return (match.owner.id, match.rule_ids) if match else (None, [])


def plainly(rules: RuleSet, event: FeedbackEvent) -> tuple[str | None, list[str]]:
    """Every rule's `when:` in full, the highest severity owning (ties: the first in the file)."""
    data = event.model_dump()
    rules.tag(data)  # the comment's themes, as the worker tags it before any rule reads `comment.themes`
    matched = [rule for rule in rules.rules if rule.when(data)]
    if not matched:
        return None, []
    return max(matched, key=lambda rule: rule.rank).id, [rule.id for rule in matched]


@pytest.mark.parametrize("which", ["conditions", "shipped"])
def test_evaluate_and_evaluate_data_agree_with_every_rule_in_full(tmp_path: Path, which: str) -> None:
    rules = rules_file(tmp_path) if which == "conditions" else load_rules(ROOT / "rules")
    checked = 0
    for event in events():
        expected = plainly(rules, event)
        assert answer(rules, event) == expected, event
        data_match = rules.evaluate_data(event.model_dump())
        assert ((data_match.owner.id, data_match.rule_ids) if data_match else (None, [])) == expected, event
        checked += bool(expected[1])
    assert checked > 100  # the events above do match rules: the comparison is not between empty answers


def test_a_condition_too_deep_for_the_compiler_still_answers() -> None:
    # Rules files cannot nest this deep any more (yamlsource refuses 100 levels), but a tree deeper than Python's
    # parser takes must still answer, through the closures: built here directly.
    cond = FieldTest("comment", lambda v: isinstance(v, str) and "late" in v.lower())
    for _ in range(300):  # an even number of nots: the same test, nested beyond what compile() accepts
        cond = Not(cond)
    for form in ("event", "data"):
        matched = matcher([("deep", cond)], form)
        for comment, expected in [("Arrived late", True), ("On time", False)]:
            event = FeedbackEvent.model_validate(
                {
                    "event_id": "e",
                    "occurred_at": "2026-11-24T10:00:00+00:00",
                    "survey": "nps",
                    "score": 5,
                    "comment": comment,
                    "customer": {"id": "c"},
                }
            )
            assert (matched(event if form == "event" else event.model_dump()) == ["deep"]) is expected


def test_attribute_names_from_a_rules_file_are_data_not_code(tmp_path: Path) -> None:
    """A key is looked up as written, whatever it contains: nothing of a rules file becomes source."""
    key = '"]) or __import__("os") or (e["'
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - id: odd\n    when: {{survey: nps, 'attributes.{key}': x}}\n", encoding="utf-8")
    rules = load_rules(path)
    base = {"event_id": "e", "occurred_at": "2026-11-24T10:00:00+00:00", "survey": "nps", "score": 9, "customer": {"id": "c"}}
    hit = FeedbackEvent.model_validate(base | {"attributes": {key: "x"}})
    miss = FeedbackEvent.model_validate(base | {"attributes": {"other": "x"}})
    assert rules.evaluate(hit) is not None and rules.evaluate_data(hit.model_dump()) is not None
    assert rules.evaluate(miss) is None and rules.evaluate_data(miss.model_dump()) is None
