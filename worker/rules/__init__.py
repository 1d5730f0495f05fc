"""Rules: what ops write in `rules/*.yaml`, loaded with `file:line`, compiled once, evaluated per event.

What other subpackages use: load_rules and RulesError, the model (Rule, RuleSet, Match), the
rule blocks (AlertSpec, ThrottleSpec, GroupSpec), compile_condition (for routes), the Router,
and the tests written inside rules files (load_tests, run_tests, report).
"""

from .blocks import DEFAULT_TEMPLATE, AlertSpec, GroupSpec, ThrottleSpec
from .conditions import Predicate, compile_condition, fold
from .loader import RulesError, load_rules, rule_files
from .model import Match, Rule, RuleSet
from .routing import NO_CHANNEL, Destination, Route, Router, compile_routes
from .ruletest_run import RuleTestResult, describe_failure, fired_metric_rules, report, run_test, run_tests
from .ruletests import RuleTest, load_tests

__all__ = [
    "AlertSpec",
    "DEFAULT_TEMPLATE",
    "Destination",
    "GroupSpec",
    "Match",
    "NO_CHANNEL",
    "Predicate",
    "Route",
    "Router",
    "Rule",
    "RuleSet",
    "RuleTest",
    "RuleTestResult",
    "RulesError",
    "ThrottleSpec",
    "compile_condition",
    "compile_routes",
    "describe_failure",
    "fired_metric_rules",
    "fold",
    "load_rules",
    "load_tests",
    "report",
    "rule_files",
    "run_test",
    "run_tests",
]
