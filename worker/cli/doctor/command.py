"""`feedback-worker doctor`: the command, the settings and rules checks, Kafka and Slack checked side by side."""

from __future__ import annotations

import argparse
import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from ...config import ConfigError, Settings, load_settings
from ...notation import SourceError
from ...rules import RulesError, RuleSet
from ..exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .kafka import kafka_rows
from .names import named_in
from .rows import FAIL, OK, SKIP, Row, as_json, table
from .slack import slack_rows

DEFAULT_TIMEOUT_S = 10


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = commands.add_parser("doctor", help="check settings, rules, Kafka and Slack before a deploy: a table, exit 1 on any ✗")
    doctor.add_argument("--config", type=Path, help="YAML file of settings; environment variables win")
    doctor.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for any one answer from Kafka or Slack (default {DEFAULT_TIMEOUT_S})",
    )
    doctor.add_argument("--json", action="store_true", help="the rows as one JSON object, for machines")
    doctor.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    timeout = max(1, args.timeout)
    rows, code = diagnose(args.config, timeout)
    if args.json:
        print(json.dumps(as_json(rows, code), indent=2, ensure_ascii=False))
    else:
        print(table(rows))
    return code


def diagnose(config: Path | None, timeout: int, environ: Mapping[str, str] | None = None) -> tuple[list[Row], int]:
    """Every check's rows, and the exit code."""
    _quiet_libraries()
    try:
        settings = load_settings(config, environ)
    except (ConfigError, SourceError) as err:
        return [Row(FAIL, "settings", str(err), "fix the setting named; docs/settings.md lists every one")], EXIT_USAGE
    rows = [Row(OK, "settings", f"parsed ({'the environment and ' + str(config) if config else 'the environment'})")]
    rules, local = check_rules(settings)
    rows += local
    # Kafka and Slack at once: each bounds its own waits, so the whole run takes about as long as the slower one.
    sections = [_Section(lambda: kafka_rows(settings, timeout)), _Section(lambda: slack_rows(settings, named_in(settings, rules), timeout))]
    for section in sections:
        section.start()
    for section in sections:
        rows += section.result()
    return rows, EXIT_FAILED if any(row.status == FAIL for row in rows) else EXIT_OK


# -- settings and rules (what `rules check` does) -------------------------------------------------------


def check_rules(settings: Settings) -> tuple[RuleSet | None, list[Row]]:
    from ...loop import load_checked, make_router
    from ...rules import describe_failure, load_tests, run_tests
    from ...tasks import SEVERITY_RANK

    rows: list[Row] = []
    router = None
    try:
        router = make_router(settings)
        default = f"; default channel {router.default_channel}" if router.default_channel else ""
        rows.append(Row(OK, "routes", f"{len(router.routes)} route(s){default}"))
    except ConfigError as err:
        rows.append(Row(FAIL, "routes", str(err), "correct the `routes:` of the config file"))
    try:
        rules, _ = load_checked(settings)
    except RulesError as err:
        problems = "\n".join(str(problem) for problem in err.errors)
        fix = f"feedback-worker rules check {settings.rules_path}"
        return None, [*rows, Row(FAIL, "rules", f"{len(err.errors)} problem(s) in {settings.rules_path}:\n{problems}", fix)]
    except (ConfigError, SourceError) as err:
        return None, [*rows, Row(FAIL, "rules", str(err), f"feedback-worker rules check {settings.rules_path}")]
    severities = [rule.severity for rule in rules.rules] + [rule.severity for rule in rules.metric_rules]
    summary = ", ".join(f"{severities.count(s)} {s}" for s in SEVERITY_RANK if s in severities)
    metric = f" and {len(rules.metric_rules)} metric rule(s)" if rules.metric_rules else ""
    rows.append(Row(OK, "rules", f"{len(rules)} rules{metric} in {len(rules.files)} file(s) ({summary}); templates render"))
    if router is None:
        return rules, rows
    try:
        results = run_tests(load_tests(settings.rules_path, rules), rules, router)
    except RulesError as err:
        problems = "\n".join(str(problem) for problem in err.errors)
        return rules, [*rows, Row(FAIL, "rule tests", f"{len(err.errors)} bad test(s):\n{problems}", "correct the `tests:` named")]
    failed = [result for result in results if not result.passed]
    if failed:
        detail = f"{len(failed)} of {len(results)} failed:\n" + "\n".join(describe_failure(result) for result in failed)
        rows.append(Row(FAIL, "rule tests", detail, "a rule or a route changed what an example expects: correct one or the other"))
    elif results:
        rows.append(Row(OK, "rule tests", f"{len(results)} pass"))
    else:
        rows.append(Row(SKIP, "rule tests", "the rules files have no `tests:`"))
    return rules, rows


# -- plumbing ------------------------------------------------------------------------------------------


class _Section:
    """Checks run on a thread of their own; an exception becomes a ✗ row instead of a trace."""

    def __init__(self, rows: Callable[[], list[Row]]) -> None:
        self._rows = rows
        self._result: list[Row] = []
        self._thread = threading.Thread(target=self._run, name="doctor-section", daemon=True)

    def _run(self) -> None:
        try:
            self._result = self._rows()
        except Exception as err:  # a bug or an answer nobody expected: say so, and go on with the other rows
            self._result = [Row(FAIL, "doctor", f"a check failed unexpectedly: {type(err).__name__}: {err}")]

    def start(self) -> None:
        self._thread.start()

    def result(self) -> list[Row]:
        self._thread.join()
        return self._result


def _quiet_libraries() -> None:
    """kafka-python and slack-sdk log every failed connection; the rows say it once. (A handler the application
    configured still gets the records: this only keeps Python's last-resort printer off the table.)"""
    for name in ("kafka", "slack_sdk", "worker.broker"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())
