"""Rule conditions as ops write them in `when:`: every operator, missing fields, nesting, ownership.

Each test compiles a real rules file with `load_rules` and evaluates real `FeedbackEvent`s,
so what is checked is what the worker does with a rule, not an internal helper.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from worker.events import FeedbackEvent
from worker.rules import RulesError, RuleSet, load_rules


def event(**fields: Any) -> FeedbackEvent:
    """A valid NPS detractor answer; keyword arguments replace fields (`customer` is merged)."""
    data: dict[str, Any] = {
        "event_id": "f-1",
        "occurred_at": "2026-11-24T10:00:00+00:00",
        "survey": "nps",
        "score": 3,
        "customer": {"id": "c-1"},
    }
    customer = fields.pop("customer", {})
    data |= fields
    data["customer"] = data["customer"] | customer
    return FeedbackEvent.model_validate(data)


def when(tmp_path: Path, condition: str) -> RuleSet:
    """Load a rules file holding one rule `r` whose `when:` is the given YAML."""
    body = textwrap.indent(textwrap.dedent(condition).strip("\n"), " " * 6)
    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - id: r\n    when:\n{body}\n", encoding="utf-8")
    return load_rules(path)


def hits(rules: RuleSet, **fields: Any) -> bool:
    return rules.evaluate(event(**fields)) is not None


# -- every operator: one event that matches, one that does not ----------------------------

OPERATOR_CASES = [
    # (condition, fields of a matching event, fields of a non-matching event)
    ("survey: csat", {"survey": "csat", "score": 2}, {"survey": "nps"}),
    ("channel: {eq: email}", {"channel": "email"}, {"channel": "Email"}),  # exact: case matters
    ("channel: {ne: sms}", {"channel": "email"}, {"channel": "sms"}),
    ("score: {lt: 3}", {"score": 2}, {"score": 3}),
    ("score: {lte: 6}", {"score": 6}, {"score": 7}),
    ("score: {gt: 8}", {"score": 9}, {"score": 8}),
    ("score: {gte: 9}", {"score": 9}, {"score": 8}),
    ("customer.monthly_value: {gte: 1000}", {"customer": {"monthly_value": 1000.0}}, {"customer": {"monthly_value": 999.99}}),
    ("customer.segment: {in: [enterprise, mid-market]}", {"customer": {"segment": "mid-market"}}, {"customer": {"segment": "smb"}}),
    ("customer.segment: {not_in: [smb]}", {"customer": {"segment": "enterprise"}}, {"customer": {"segment": "smb"}}),
    ("score: {in: [0, 1, 2]}", {"score": 1}, {"score": 3}),
    ("comment: {contains: refund}", {"comment": "I want a REFUND now"}, {"comment": "I want a replacement"}),
    ("comment: {contains_any: [cancel, lawyer]}", {"comment": "Calling my Lawyer"}, {"comment": "All good"}),
    ("comment: {matches: '(?i)\\bcancel+ed\\b'}", {"comment": "I CANCELLED the plan"}, {"comment": "cancellation fee"}),
    ("comment: {exists: true}", {"comment": ""}, {}),  # an empty comment is still a comment
    ("comment: {exists: false}", {}, {"comment": "hi"}),
]


@pytest.mark.parametrize(("condition", "matching", "other"), OPERATOR_CASES, ids=[c[0] for c in OPERATOR_CASES])
def test_each_operator_matches_and_rejects(tmp_path: Path, condition: str, matching: dict[str, Any], other: dict[str, Any]) -> None:
    rules = when(tmp_path, condition)
    assert hits(rules, **matching)
    assert not hits(rules, **other)


def test_several_operators_on_one_field_are_anded(tmp_path: Path) -> None:
    rules = when(tmp_path, "score: {gte: 3, lte: 5}")
    assert [s for s in range(11) if hits(rules, score=s)] == [3, 4, 5]


# -- text: Unicode case folding, accents, decomposed input -------------------------------


@pytest.mark.parametrize(
    ("needles", "comment"),
    [
        ("[tühista]", "Palun TÜHISTA mu tellimus"),  # Estonian, upper case with a diacritic
        ("[raha tagasi]", "Tahan RAHA TAGASI"),
        ("['geld terug']", "Ik wil mijn Geld Terug!"),  # Dutch, a phrase
        ("[opzeggen]", "Ik ga OPZEGGEN"),
        ("[straße]", "Lieferung in die HAUPTSTRASSE kam nie an"),  # casefold, not lower(): ß == ss
        ("[tühista]", "palun tu\u0308hista"),  # decomposed u + U+0308, as macOS and some phones send
        ("['tu\u0308hista']", "TÜHISTA"),  # a decomposed needle in the rules file
    ],
)
def test_contains_any_is_case_insensitive_with_unicode_casefold(tmp_path: Path, needles: str, comment: str) -> None:
    assert hits(when(tmp_path, f"comment: {{contains_any: {needles}}}"), comment=comment)


def test_contains_does_not_ignore_accents_unless_asked(tmp_path: Path) -> None:
    strict = when(tmp_path, "comment: {contains_any: [reembolso]}")
    assert not hits(strict, comment="Quiero un reembolsó")
    assert not hits(when(tmp_path, "comment: {contains: tühista}"), comment="tuhista palun")


@pytest.mark.parametrize(
    "comment",
    ["Quiero un reembolsó", "QUIERO UN REEMBOLSÓ", "quiero un reembolso\u0301", "reembolso ya"],
)
def test_ignore_accents_matches_with_or_without_accents(tmp_path: Path, comment: str) -> None:
    rules = when(tmp_path, "comment: {contains_any: [refund, reembolso], ignore_accents: true}")
    assert hits(rules, comment=comment)
    assert not hits(rules, comment="Quiero una respuesta")


def test_ignore_accents_applies_to_an_accented_needle_and_to_contains(tmp_path: Path) -> None:
    rules = when(tmp_path, "comment: {contains: reembolsó, ignore_accents: true}")
    assert hits(rules, comment="REEMBOLSO por favor")
    assert hits(rules, comment="un reembolsó")


def test_matches_is_a_python_regex_searched_anywhere_with_unicode_classes(tmp_path: Path) -> None:
    rules = when(tmp_path, r"comment: {matches: '\btühista\b'}")
    assert hits(rules, comment="Palun tühista kohe")
    assert not hits(rules, comment="tühistamine")  # \b knows ü is a word character
    assert not hits(rules, comment="Palun TÜHISTA")  # no folding: use (?i) for that


def test_contains_any_needles_are_literal_text_not_regex(tmp_path: Path) -> None:
    rules = when(tmp_path, "comment: {contains_any: ['a.b', '(x)']}")
    assert hits(rules, comment="see (x) here")
    assert not hits(rules, comment="axb")


# -- missing optional fields (docs/rules.md: only exists: false, ne and not_in match) ----

MISSING_CASES = [
    ("comment: hi", False),
    ("comment: {eq: hi}", False),
    ("comment: {ne: hi}", True),
    ("comment: {in: [hi]}", False),
    ("comment: {not_in: [hi]}", True),
    ("comment: {contains: hi}", False),
    ("comment: {contains_any: [hi]}", False),
    ("comment: {matches: '.*'}", False),  # even a pattern that matches the empty string
    ("comment: {exists: true}", False),
    ("comment: {exists: false}", True),
    ("customer.monthly_value: {lt: 1000}", False),  # missing is not zero
    ("customer.monthly_value: {lte: 1000}", False),
    ("customer.monthly_value: {gt: 0}", False),
    ("customer.monthly_value: {gte: 0}", False),
    ("customer.segment: {not_in: [smb]}", True),
    ("attributes.region: eu", False),
    ("attributes.region: {ne: eu}", True),
    ("attributes.region: {exists: false}", True),
    ("attributes.order_total: {gt: 0}", False),
]


@pytest.mark.parametrize(("condition", "expected"), MISSING_CASES, ids=[c[0] for c in MISSING_CASES])
def test_a_missing_field_matches_only_exists_false_ne_and_not_in(tmp_path: Path, condition: str, expected: bool) -> None:
    assert hits(when(tmp_path, condition)) is expected  # the default event has no comment, value, segment, attributes


def test_an_attribute_set_to_null_counts_as_missing(tmp_path: Path) -> None:
    assert hits(when(tmp_path, "attributes.region: {exists: false}"), attributes={"region": None})
    assert not hits(when(tmp_path, "attributes.region: {exists: true}"), attributes={"region": None})


# -- attributes.* and occurred_at -------------------------------------------------------


def test_attributes_paths_compare_free_form_values(tmp_path: Path) -> None:
    rules = when(tmp_path, "attributes.product: ink\nattributes.order_total: {gt: 100}")
    assert hits(rules, attributes={"product": "ink", "order_total": 150})
    assert not hits(rules, attributes={"product": "ink", "order_total": 50})
    assert not hits(rules, attributes={"product": "ink", "order_total": "150"})  # text is not a number
    assert not hits(rules, attributes={"product": "paper", "order_total": 150})


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("occurred_at: {gte: '2026-11-24T11:00:00+01:00'}", True),  # the same instant in another offset
        ("occurred_at: {gt: '2026-11-24T11:00:00+01:00'}", False),
        ("occurred_at: {lt: '2026-11-24T10:00:01Z'}", True),
        ("occurred_at: {lte: 2026-11-24T09:59:59+00:00}", False),  # an unquoted YAML timestamp works too
        ("occurred_at: '2026-11-24T05:00:00-05:00'", True),
        ("occurred_at: {in: ['2026-11-24T12:00:00+02:00']}", True),
    ],
)
def test_occurred_at_compares_instants_across_offsets(tmp_path: Path, condition: str, expected: bool) -> None:
    assert hits(when(tmp_path, condition), occurred_at="2026-11-24T10:00:00+00:00") is expected


# -- combining conditions -------------------------------------------------------------


def test_several_keys_in_one_mapping_are_anded(tmp_path: Path) -> None:
    rules = when(tmp_path, "survey: csat\nscore: {lte: 2}\nchannel: email")
    assert hits(rules, survey="csat", score=2, channel="email")
    assert not hits(rules, survey="csat", score=2, channel="sms")
    assert not hits(rules, survey="csat", score=3, channel="email")
    assert not hits(rules, survey="nps", score=2, channel="email")


def test_all_any_not_nest(tmp_path: Path) -> None:
    rules = when(
        tmp_path,
        """
        all:
          - customer.segment: {in: [enterprise]}
          - any:
              - {survey: csat, score: {lte: 2}}
              - comment: {contains_any: [cancel, refund]}
          - not: {channel: sms}
        """,
    )
    enterprise = {"customer": {"segment": "enterprise"}}
    assert hits(rules, survey="csat", score=1, **enterprise)
    assert hits(rules, survey="nps", score=9, comment="please CANCEL", **enterprise)
    assert not hits(rules, survey="nps", score=9, comment="great", **enterprise)  # neither branch of any
    assert not hits(rules, survey="csat", score=1, channel="sms", **enterprise)  # the not
    assert not hits(rules, survey="csat", score=1, customer={"segment": "smb"})  # the all


def test_not_of_a_condition_on_a_missing_field_matches(tmp_path: Path) -> None:
    rules = when(tmp_path, "not: {comment: {contains: thanks}}")
    assert hits(rules)
    assert hits(rules, comment="terrible")
    assert not hits(rules, comment="Thanks!")


# -- type errors are found when the rules load, not on the first event ------------------


@pytest.mark.parametrize(
    ("condition", "key", "problem"),
    [
        ("score: {lte: six}", "when.score.lte", "score is a number, got str 'six'"),
        ("score: {gte: true}", "when.score.gte", "score is a number, got bool True"),
        ("score: '3'", "when.score", "score is a number"),
        ("survey: promoter", "when.survey", "survey is one of nps, csat, ces"),
        ("survey: {in: [nps, NPS]}", "when.survey.in[1]", "survey is one of"),
        ("channel: 42", "when.channel", "channel is text, got int 42; quote it"),
        ("channel: yes", "when.channel", "got bool True; quote it"),  # YAML 1.1 reads `yes` as true
        ("comment: {lt: '5'}", "when.comment.lt", "expected a number for lt"),
        ("comment: {contains: 5}", "when.comment.contains", "expected text"),
        ("comment: {contains_any: refund}", "when.comment.contains_any", "a non-empty list of text"),
        ("comment: {contains_any: []}", "when.comment.contains_any", "a non-empty list of text"),
        ("comment: {matches: 5}", "when.comment.matches", "a regular expression as text"),
        ("comment: {exists: 'yes'}", "when.comment.exists", "true or false"),
        ("comment: {contains: x, ignore_accents: 1}", "when.comment.ignore_accents", "true or false"),
        ("comment: [a, b]", "when.comment", "did you mean `{in: [...]}`"),
        ("score: {in: 5}", "when.score.in", "a non-empty list"),
        ("score: {contains: '5'}", "when.score.contains", "score is not text"),
        ("occurred_at: {gt: yesterday}", "when.occurred_at.gt", "RFC 3339"),
        ("occurred_at: {gt: '2026-11-24T09:00:00'}", "when.occurred_at.gt", "RFC 3339 time with offset"),
        ("attributes.tier: {gt: gold}", "when.attributes.tier.gt", "expected a number for gt"),
        ("any: []", "when.any", "non-empty list of conditions"),
        ("not: [{survey: nps}]", "when.not", "expected a mapping"),
    ],
)
def test_type_errors_are_reported_at_load_time(tmp_path: Path, condition: str, key: str, problem: str) -> None:
    with pytest.raises(RulesError) as caught:
        when(tmp_path, condition)
    (error,) = caught.value.errors
    assert f"rule 'r': {key}: " in str(error)
    assert problem in error.message


# -- one event, several rules: the highest severity owns it ------------------------------


def load(tmp_path: Path, rules: list[tuple[str, str, str]]) -> RuleSet:
    """Rules from (id, severity, when-as-flow-YAML), in this file order."""
    lines = ["rules:"] + [f"  - {{id: {i}, severity: {sev}, when: {cond}}}" for i, sev, cond in rules]
    path = tmp_path / "rules.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_rules(path)


def test_highest_severity_owns_the_event_and_every_match_is_listed(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        [
            ("info-any", "info", "{survey: nps}"),
            ("detractor", "high", "{score: {lte: 6}}"),
            ("promoter", "low", "{score: {gte: 9}}"),
            ("enterprise", "critical", "{customer.segment: enterprise}"),
            ("low-score", "medium", "{score: {lte: 4}}"),
        ],
    )
    match = rules.evaluate(event(score=3, customer={"segment": "enterprise"}))
    assert match is not None
    assert match.owner.id == "enterprise"  # last in the file, but critical
    assert match.rule_ids == ["info-any", "detractor", "enterprise", "low-score"]  # file order, not severity order

    smb = rules.evaluate(event(score=3, customer={"segment": "smb"}))
    assert smb is not None and smb.owner.id == "detractor"


def test_a_severity_tie_goes_to_the_first_rule_in_file_order(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        [
            ("medium-first", "medium", "{survey: nps}"),
            ("high-a", "high", "{score: {lte: 6}}"),
            ("high-b", "high", "{score: {lte: 4}}"),
        ],
    )
    match = rules.evaluate(event(score=3))
    assert match is not None and match.owner.id == "high-a"
    assert match.rule_ids == ["medium-first", "high-a", "high-b"]


def test_severity_defaults_to_medium_and_no_match_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - {id: a, when: {survey: csat}}\n  - {id: b, severity: low, when: {survey: csat}}\n")
    rules = load_rules(path)
    match = rules.evaluate(event(survey="csat", score=1))
    assert match is not None and match.owner.id == "a" and match.owner.severity == "medium"
    assert rules.evaluate(event(survey="nps")) is None


# -- known bugs -----------------------------------------------------------------------


def test_a_boolean_literal_does_not_equal_a_number(tmp_path: Path) -> None:
    rules = when(tmp_path, "attributes.vip: true")
    assert hits(rules, attributes={"vip": True})
    assert not hits(rules, attributes={"vip": 1})
