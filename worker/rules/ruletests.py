"""Rule tests written next to the rules: `tests:` in a rules file, parsed and checked here.

A rule that silently stops matching (a typo in a word list, a severity change that moves
ownership to another team) is found by a customer, days later. A few examples in the rules
file, run by `feedback-worker rules check` (and so by CI), find it before the deploy:

    tests:
      - name: detractor with refund request
        event: {survey: nps, score: 2, comment: "Ik wil mijn geld terug"}
        expect: {rule: nps-detractor, severity: high, channel: "#cx-alerts"}

Missing event fields get harmless defaults (`DEFAULTS`); the event then goes through the
real FeedbackEvent validation, so a test can only describe an event the worker accepts.
Every mistake is reported as `file:line: test 'name': ...`. Running the tests and printing
the outcome is in `ruletest_run.py`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..events import FeedbackEvent
from ..metrics import MetricSnapshot, Tally, figures
from ..notation import LineDict, LineList, Location, SourceError, format_duration, load_yaml, locate, parse_duration
from ..tasks import SEVERITY_RANK
from .loader import RulesError, rule_files
from .model import RuleSet

TEST_KEYS = ("name", "event", "snapshot", "expect")
EXPECT_KEYS = ("rule", "severity", "channel", "owner", "template", "matched")
#: A fixed, recent moment: tests give the same answer on every day they run.
TEST_TIME = "2026-11-24T10:00:00+00:00"
TEST_CUSTOMER = "test-customer"
#: The happiest answer of each survey: a default score never makes a rule match by itself.
HAPPIEST = {"nps": 10, "csat": 5, "ces": 1}


@dataclass(frozen=True)
class RuleTest:
    """One parsed test: what it gives, the defaults it got, and what it expects."""

    name: str
    location: Location
    kind: str  # "event" or "snapshot"
    given: dict[str, Any]  # as written in the file
    defaults: dict[str, Any]  # what was filled in, by dotted path
    subject: FeedbackEvent | MetricSnapshot
    expect: dict[str, Any]  # only the keys the test gives, in written order


def load_tests(path: Path | str, rules: RuleSet) -> list[RuleTest]:
    """Every test in every rules file under `path`, checked against the whole rule set.

    Raises RulesError with every problem (file:line), like `load_rules`.
    """
    errors: list[SourceError] = []
    tests: list[RuleTest] = []
    for file in rule_files(path):
        try:
            document = load_yaml(file)
        except SourceError as err:
            errors.append(err)
            continue
        items = document.get("tests") if isinstance(document, LineDict) else None
        if items is None:
            continue
        if not isinstance(items, LineList):
            errors.append(SourceError(document.where("tests"), "`tests:` must be a list of tests"))
            continue
        for index, node in enumerate(items):
            test = _build(node, items.where(index), index, rules, errors)
            if test is not None:
                tests.append(test)
    if errors:
        raise RulesError(errors)
    return tests


def _build(node: Any, where: Location, index: int, rules: RuleSet, errors: list[SourceError]) -> RuleTest | None:
    if not isinstance(node, LineDict):
        errors.append(SourceError(where, f"tests[{index}]: expected a mapping with name, event (or snapshot) and expect"))
        return None
    name = node.get("name")
    if not isinstance(name, str) or not name.strip():
        problem = "missing `name:` (say what the example shows)" if name is None else f"name must be text, got {name!r}"
        errors.append(SourceError(node.where("name"), f"tests[{index}]: {problem}"))
        return None
    label = f"test {name!r}"
    problems = [
        SourceError(node.where(key), f"{label}: unknown key {key!r} (expected: {', '.join(TEST_KEYS)})")
        for key in node
        if key not in TEST_KEYS
    ]
    kinds = [key for key in ("event", "snapshot") if key in node]
    if len(kinds) != 1:
        problems.append(SourceError(where, f"{label}: give exactly one of `event:` or `snapshot:`"))
    if "expect" not in node:
        problems.append(SourceError(where, f"{label}: missing `expect:` (at least `rule:`, the owning rule id or null)"))
    errors.extend(sorted(problems, key=lambda err: err.location.line))
    if len(kinds) != 1:
        return None
    kind = kinds[0]
    given = node[kind]
    if not isinstance(given, LineDict):
        errors.append(SourceError(node.where(kind), f"{label}: {kind}: expected a mapping of fields"))
        return None
    before = len(errors)
    subject: FeedbackEvent | MetricSnapshot | None
    if kind == "event":
        subject, defaults = _event(given, index + 1, label, errors)
    else:
        subject, defaults = _snapshot(given, label, errors)
    expect = _expect(node["expect"], node.where("expect"), label, kind, rules, errors) if "expect" in node else None
    if problems or len(errors) > before or subject is None or expect is None:
        return None
    return RuleTest(name, where, kind, given, defaults, subject, expect)


def _event(given: LineDict, n: int, label: str, errors: list[SourceError]) -> tuple[FeedbackEvent | None, dict[str, Any]]:
    _unknown_fields(given, FeedbackEvent, "event", label, errors)
    data, defaults = dict(given), {}
    survey = data.get("survey", "nps")
    for key, value in (
        ("event_id", f"test-{n}"),
        ("occurred_at", TEST_TIME),
        ("survey", "nps"),
        ("score", HAPPIEST.get(survey, 10) if isinstance(survey, str) else 10),
    ):
        if key not in data:
            data[key] = defaults[key] = value
    customer = data.get("customer")
    if customer is None or (isinstance(customer, dict) and "id" not in customer):
        data["customer"] = {**(customer or {}), "id": TEST_CUSTOMER}
        defaults["customer.id"] = TEST_CUSTOMER
    try:
        return FeedbackEvent.model_validate(data), defaults
    except ValidationError as exc:
        _report(exc, given, f"{label}: event", errors)
        return None, defaults


def _snapshot(given: LineDict, label: str, errors: list[SourceError]) -> tuple[MetricSnapshot | None, dict[str, Any]]:
    """A partial snapshot: `window` (a size) is required; every figure not given is 0 (scores null)."""
    _unknown_fields(given, MetricSnapshot, "snapshot", label, errors)
    if "window" not in given:
        errors.append(SourceError(given.location, f"{label}: snapshot: missing `window:` (a window size, e.g. 24h)"))
        return None, {}
    try:
        size = parse_duration(given["window"])
    except ValueError as err:
        errors.append(SourceError(given.where("window"), f"{label}: snapshot.window: {err}"))
        return None, {}
    end = datetime.fromisoformat(TEST_TIME)
    window = {"size": format_duration(size), "start": (end - size).isoformat(), "end": end.isoformat()}
    data: dict[str, Any] = {"dimension": {}, "final": False, "emitted_at": TEST_TIME, "window": window}
    for key, value in figures(Tally(), 0.95).items():
        data[key] = value.model_dump() if isinstance(value, BaseModel) else value
    for key, value in given.items():
        if key != "window":
            data[key] = data[key] | value if isinstance(data.get(key), dict) and isinstance(value, dict) else value
    defaults = {"window": f"{window['start']}/{window['end']}", "other figures": "0 (scores and means null)"}
    try:
        return MetricSnapshot.model_validate(data), defaults
    except ValidationError as exc:
        _report(exc, given, f"{label}: snapshot", errors)
        return None, defaults


def _expect(node: Any, where: Location, label: str, kind: str, rules: RuleSet, errors: list[SourceError]) -> dict[str, Any] | None:
    if not isinstance(node, LineDict):
        errors.append(SourceError(where, f"{label}: expect: expected a mapping with rule (and optionally {', '.join(EXPECT_KEYS[1:])})"))
        return None
    before = len(errors)

    def fail(key: str, message: str) -> None:
        errors.append(SourceError(node.where(key), f"{label}: expect.{key}: {message}"))

    for key in node:
        if key not in EXPECT_KEYS:
            fail(key, f"unknown key (expected: {', '.join(EXPECT_KEYS)})")
    if "rule" not in node:
        errors.append(SourceError(node.location, f"{label}: expect: missing `rule:` (the owning rule id, or null for no match)"))
    elif node["rule"] is None:
        for key in ("severity", "channel", "owner", "template"):
            if key in node:
                fail(key, "nothing is alerted when `rule: null`; remove it")
    else:
        _check_id(node["rule"], kind, rules, lambda message: fail("rule", message))
    if "severity" in node and node["severity"] not in SEVERITY_RANK:
        fail("severity", f"must be one of {', '.join(SEVERITY_RANK)}, got {node['severity']!r}")
    for key in ("channel", "owner", "template"):
        if key in node and not isinstance(node[key], str):
            fail(key, f"expected text, got {node[key]!r}")
    if "matched" in node:
        matched = node["matched"]
        if not isinstance(matched, list):
            fail("matched", f"expected a list of rule ids, got {matched!r}")
        else:
            for rule_id in matched:
                _check_id(rule_id, kind, rules, lambda message: fail("matched", message))
    if len(errors) > before:
        return None
    return {key: list(value) if isinstance(value, list) else value for key, value in node.items()}


def _check_id(rule_id: Any, kind: str, rules: RuleSet, fail: Any) -> None:
    """The id must name a rule of the test's kind: a typo would make the test pass or fail for nothing."""
    own = [r.id for r in (rules.rules if kind == "event" else rules.metric_rules)]
    if not isinstance(rule_id, str):
        fail(f"expected a rule id, got {rule_id!r}")
    elif rule_id not in own:
        if kind == "event" and rule_id in {r.id for r in rules.metric_rules}:
            fail(f"{rule_id!r} is a metric rule: test it with `snapshot:`, not `event:`")
        elif kind == "snapshot" and rule_id in {r.id for r in rules.rules}:
            fail(f"{rule_id!r} is an event rule: test it with `event:`, not `snapshot:`")
        else:
            close = difflib.get_close_matches(rule_id, own, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"rules: {', '.join(own) or 'none'}"
            fail(f"unknown rule {rule_id!r} ({hint})")


def _unknown_fields(given: LineDict, model: type[BaseModel], path: str, label: str, errors: list[SourceError]) -> None:
    """Real events may carry unknown fields; in a test, one is a typo that would test something else.

    Nested models (customer, nps, ...) are checked too; free-form mappings (attributes, dimension) are not.
    """
    for key in given:
        if key not in model.model_fields:
            close = difflib.get_close_matches(str(key), list(model.model_fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            errors.append(SourceError(given.where(key), f"{label}: {path}.{key}: unknown field{hint}"))
            continue
        inner = model.model_fields[key].annotation
        if isinstance(given[key], LineDict) and isinstance(inner, type) and issubclass(inner, BaseModel):
            _unknown_fields(given[key], inner, f"{path}.{key}", label, errors)


def _report(exc: ValidationError, given: LineDict, prefix: str, errors: list[SourceError]) -> None:
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        errors.append(SourceError(locate(given, err["loc"]), f"{prefix}.{path}: {message}"))


def window_size(snapshot: MetricSnapshot) -> timedelta:
    """A test snapshot's window as a duration, to compare with a metric rule's `window:`."""
    return parse_duration(snapshot.window.size)
