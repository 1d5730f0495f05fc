"""Run rule tests (`ruletests.py`) the way the worker decides, and say plainly what differs.

The actual outcome comes from the same code the worker uses: `RuleSet.evaluate` for events
(owner = highest severity, ties to the first in file order), the worker's `Router` for their
channel and owner (the rule's own, the config's `routes:`, then SLACK_DEFAULT_CHANNEL), and
`metrics.holds` for snapshots, whose channel falls back as `Worker.metric_alert` does. A failure
shows the test's file:line, its event with the defaults it got, each expected-vs-actual
difference and every rule that matched, so the fix is obvious without a debugger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TextIO

from ..events import FeedbackEvent
from ..metrics import MetricRule, MetricSnapshot, holds
from ..tasks import SEVERITY_RANK
from .model import Rule, RuleSet
from .routing import NO_CHANNEL, Router
from .ruletests import RuleTest, window_size


@dataclass(frozen=True)
class RuleTestResult:
    test: RuleTest
    actual: dict[str, Any]  # rule, severity, channel, owner, template, matched
    matched: tuple[tuple[str, str], ...]  # (rule id, severity) of every rule that matched, in file order
    differences: tuple[tuple[str, Any, Any], ...]  # (key, expected, actual)

    @property
    def passed(self) -> bool:
        return not self.differences


def run_tests(tests: list[RuleTest], rules: RuleSet, router: Router | None = None) -> list[RuleTestResult]:
    """`router`: the worker's (checks.make_router); by default no routes and no SLACK_DEFAULT_CHANNEL."""
    router = router or Router()
    return [run_test(test, rules, router) for test in tests]


def run_test(test: RuleTest, rules: RuleSet, router: Router) -> RuleTestResult:
    subject = test.subject
    if isinstance(subject, FeedbackEvent):
        match = rules.evaluate(subject)
        fired: list[Rule | MetricRule] = list(match.rules) if match else []
        actual = _outcome(match.owner if match else None, fired)
        if match is not None:
            channel, owner = router.destination(subject, match.owner)
            actual |= {"channel": channel, "owner": owner}
    else:
        fired = list(fired_metric_rules(rules, subject))
        # Metric rules alert independently; the "owner" is picked like an event's, for one comparable answer.
        top = max(fired, key=lambda r: (SEVERITY_RANK[r.severity], -fired.index(r))) if fired else None
        actual = _outcome(top, fired)
        if isinstance(top, MetricRule):
            actual |= {"channel": top.channel or router.default_channel or NO_CHANNEL, "owner": top.owner}
    differences = []
    for key, expected in test.expect.items():
        got = actual[key]
        same = set(expected) == set(got) if key == "matched" else expected == got
        if not same:
            differences.append((key, expected, got))
    return RuleTestResult(test, actual, tuple((r.id, r.severity) for r in fired), tuple(differences))


def fired_metric_rules(rules: RuleSet, snapshot: MetricSnapshot) -> list[MetricRule]:
    """Metric rules watching this snapshot's window and dimension whose condition holds (MetricWatch's test)."""
    size = window_size(snapshot)
    return [
        rule
        for rule in rules.metric_rules
        if rule.condition.window == size and rule.condition.dimension == snapshot.dimension and holds(rule.condition, snapshot) is True
    ]


def _outcome(owner: Rule | MetricRule | None, fired: list[Rule | MetricRule]) -> dict[str, Any]:
    """Everything but channel and owner, which need the router."""
    template = None if owner is None else owner.alert.template if isinstance(owner, Rule) else owner.template
    return {
        "rule": owner and owner.id,
        "severity": owner and owner.severity,
        "channel": None,
        "owner": None,
        "template": template,
        "matched": [rule.id for rule in fired],
    }


# -- what `rules check` prints ----------------------------------------------------------------


def report(results: list[RuleTestResult], out: TextIO, err: TextIO) -> bool:
    """Print every failure (to `err`) and a one-line summary; True when all passed."""
    failed = [result for result in results if not result.passed]
    for result in failed:
        print(describe_failure(result), file=err)
    if failed:
        print(f"error: {len(failed)} of {len(results)} rule test(s) failed", file=err)
    elif results:
        print(f"ok: {len(results)} rule test(s) pass", file=out)
    return not failed


def describe_failure(result: RuleTestResult) -> str:
    test = result.test
    lines = [f"FAIL {test.location}: test {test.name!r}", f"  {test.kind}: {_json(test.given)}"]
    if test.defaults:
        lines.append("  defaults: " + ", ".join(f"{path}={value}" for path, value in test.defaults.items()))
    for key, expected, got in result.differences:
        lines.append(f"  {key}: expected {_show(key, expected)}, got {_show(key, got)}")
    lines.append(f"  rules that matched: {_matched(result)}")
    return "\n".join(lines)


def _matched(result: RuleTestResult) -> str:
    if not result.matched:
        return "no rule"
    shown = ", ".join(f"{rule_id} ({severity})" for rule_id, severity in result.matched)
    owner = result.actual["rule"]
    top = [rule_id for rule_id, severity in result.matched if severity == result.actual["severity"]]
    if len(result.matched) == 1:
        return shown
    if result.test.kind == "snapshot":  # metric rules alert independently; `rule` is the most severe
        return f"{shown}; the most severe is {owner}"
    tie = f" (a tie at {result.actual['severity']}: the first in file order wins)" if len(top) > 1 else " (highest severity)"
    return f"{shown}; {owner} owns{tie}"


def _show(key: str, value: Any) -> str:
    if key == "matched":
        return "[" + ", ".join(value) + "]"
    if value is None:
        return "no rule (null)" if key == "rule" else "null"
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))
