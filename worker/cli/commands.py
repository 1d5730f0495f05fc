"""`feedback-worker`: run the worker, check rules, run the demo."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .. import __version__
from ..broker import TopologyError
from ..config import ConfigError, early_logging, load_settings
from ..logs import setup_logging
from ..notation import SourceError
from ..rules import RulesError
from . import backtest, doctor, report, silences, tasks, themes
from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feedback-worker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="consume feedback events and act on them (configured by environment)")
    run.add_argument("--config", type=Path, help="YAML file of settings; environment variables win")
    run.set_defaults(func=cmd_run)

    demo = commands.add_parser("demo", help="the whole flow on an embedded broker, with generated feedback")
    demo.add_argument("--events", type=int, default=300, help="how many feedback events to produce (default 300)")
    demo.add_argument("--seed", type=int, default=7, help="random seed for the generated feedback")
    demo.set_defaults(func=cmd_demo)

    rules = commands.add_parser("rules", help="work with rules files")
    rules_commands = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_commands.add_parser("check", help="validate rules; exit non-zero with file:line on problems")
    check.add_argument("path", type=Path, help="a rules file or a directory of *.yaml")
    check.add_argument("--templates", type=Path, help="templates directory (default: TEMPLATES_PATH or templates/)")
    check.add_argument("--config", type=Path, help="the worker's config file: its metrics windows and routes apply")
    check.set_defaults(func=cmd_rules_check)
    backtest.register(rules_commands)  # `rules test`: backtest on recorded feedback

    template = commands.add_parser("template", help="work with Slack alert templates")
    template_commands = template.add_subparsers(dest="template_command", required=True)
    render = template_commands.add_parser("render", help="print an alert for an event file exactly as it would be posted")
    render.add_argument("name", help="template file name, e.g. detractor.slack.j2 (root_causes.slack.j2: the digest, for sample tasks)")
    render.add_argument("--event", type=Path, help="a feedback event as JSON, as on the topic (not for root_causes.slack.j2)")
    render.add_argument("--rule", help="the rule that owns the alert (default: the rule the worker would pick)")
    render.add_argument("--templates", type=Path, help="templates directory (default: TEMPLATES_PATH or templates/)")
    render.add_argument("--rules", type=Path, help="rules file or directory (default: RULES_PATH or rules/)")
    render.add_argument("--config", type=Path, help="the worker's config file: its routes pick the channel and owner")
    render.add_argument("--json", action="store_true", help="print only the chat.postMessage JSON")
    render.set_defaults(func=cmd_template_render)

    silences.register(commands)
    tasks.register(commands)
    report.register(commands)
    themes.register(commands)  # `themes suggest`: new themes from the comments no theme covers
    doctor.register(commands)  # `doctor`: settings, rules, Kafka and Slack checked before a deploy

    schema = commands.add_parser("schema", help="print the JSON Schema of a record type, for producers and consumers")
    schema.add_argument("record", choices=sorted(SCHEMAS), help="event (input), action (input), task, lifecycle, snapshot, survey, dlq")
    schema.set_defaults(func=cmd_schema)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, SourceError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except RulesError as err:
        _print_rules_error(err)
        return EXIT_USAGE


def _print_rules_error(err: RulesError) -> None:
    print(f"error: {len(err.errors)} problem(s) in rules:", file=sys.stderr)
    for problem in err.errors:
        print(f"  {problem}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    from ..service import serve

    fmt, secrets = early_logging()
    if fmt == "json":  # a bad setting or rule is then a JSON line too, not text in the middle of the pipeline
        setup_logging("INFO", secrets, "json")
    try:
        settings = load_settings(args.config)
        setup_logging(settings.log_level, settings.secrets(), settings.log_format)
        fmt = settings.log_format
        stop, reload = threading.Event(), threading.Event()
        _stop_on_signals(stop)
        signal.signal(signal.SIGHUP, lambda _signum, _frame: reload.set())  # reload rules and templates now
        serve(settings, stop, reload=reload)
    except TopologyError as err:  # found before joining the group: nothing consumed, nothing committed
        _log_startup_error(err)
        return EXIT_USAGE
    except (ConfigError, RulesError, SourceError) as err:
        if fmt != "json":
            raise  # main() prints it as text, as `rules check` does
        _log_startup_error(err)
        return EXIT_USAGE
    except Exception:
        # Uncommitted work is redelivered on restart; say so instead of only dumping a trace.
        logging.getLogger("worker").exception("worker failed; uncommitted events will be processed again on restart")
        return EXIT_FAILED
    return EXIT_OK


def _log_startup_error(err: Exception) -> None:
    """A start-up error as log records: one per rules problem, so each is a searchable line."""
    log = logging.getLogger("worker")
    if isinstance(err, RulesError):
        log.error("%d problem(s) in rules:", len(err.errors))
        for problem in err.errors:
            log.error("%s", problem)
    elif isinstance(err, TopologyError):
        log.error(
            'cannot start: %d problem(s) with the Kafka topics (docs/settings.md, "What the worker checks of its topics at start-up"):',
            len(err.problems),
        )
        for finding in err.problems:
            log.error("%s", finding)
    else:
        log.error("%s", err)


def cmd_rules_check(args: argparse.Namespace) -> int:
    from ..loop import load_checked, make_router
    from ..rules import load_tests, report, run_tests
    from ..tasks import SEVERITY_RANK

    overrides = {"rules_path": args.path, "templates_path": args.templates}
    settings = load_settings(args.config, **overrides)
    rules, _ = load_checked(settings)

    tests = load_tests(settings.rules_path, rules)  # `tests:` in the rules files; a bad one is a RulesError (exit 2)
    router = make_router(settings)  # tests see channels and owners as the worker routes them

    severities = [rule.severity for rule in rules.rules] + [rule.severity for rule in rules.metric_rules]
    summary = ", ".join(f"{severities.count(s)} {s}" for s in SEVERITY_RANK if s in severities)
    metric = f" and {len(rules.metric_rules)} metric rule(s)" if rules.metric_rules else ""
    print(f"ok: {len(rules)} rules{metric} in {len(rules.files)} file(s) ({summary}); templates render", flush=True)
    passed = report(run_tests(tests, rules, router), sys.stdout, sys.stderr)
    return EXIT_OK if passed else EXIT_FAILED


def cmd_template_render(args: argparse.Namespace) -> int:
    from ..alerting import ROOT_CAUSES_TEMPLATE, DigestPreview, Preview, PreviewError, render_preview, render_root_causes_preview
    from ..loop import make_router

    settings = load_settings(args.config, rules_path=args.rules, templates_path=args.templates)
    if args.name != ROOT_CAUSES_TEMPLATE and args.event is None:
        print(f"error: give --event FILE: {args.name} renders an alert for an event", file=sys.stderr)
        return EXIT_USAGE
    try:
        preview: Preview | DigestPreview
        if args.name == ROOT_CAUSES_TEMPLATE:  # the digest renders from a period's tasks: sample ones
            preview = render_root_causes_preview(
                settings.templates_path, settings.root_cause_digest, settings.slack_default_channel, settings.metrics.churn_probability
            )
        else:
            preview = render_preview(args.name, args.event, settings.rules_path, settings.templates_path, args.rule, make_router(settings))
    except PreviewError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    for note in preview.notes:
        print(f"note: {note}", file=sys.stderr)
    print(preview.format(as_json=args.json))
    return EXIT_OK


SCHEMAS = {
    "event": ("worker.events", "FeedbackEvent"),
    "task": ("worker.tasks", "FollowUpTask"),
    "lifecycle": ("worker.tasks", "TASK_RECORD"),  # every record of FOLLOWUP_TOPIC, by `type`
    "action": ("worker.tasks", "ACTION"),  # what TASK_ACTIONS_TOPIC accepts, by `action`
    "snapshot": ("worker.metrics", "MetricSnapshot"),
    "survey": ("worker.tasks", "SurveyRequest"),  # what SURVEY_REQUEST_TOPIC carries: ask the customer again
    "dlq": ("worker.stream", "DeadLetter"),
}


def schema_of(record: str) -> dict[str, Any]:
    """The JSON Schema of one record type, straight from its pydantic model (or union of models)."""
    import importlib

    module, name = SCHEMAS[record]
    model = getattr(importlib.import_module(module), name)
    return model.json_schema() if hasattr(model, "json_schema") else model.model_json_schema()


def cmd_schema(args: argparse.Namespace) -> int:
    import json

    print(json.dumps(schema_of(args.record), indent=2, ensure_ascii=False))
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(events=args.events, seed=args.seed)


def _stop_on_signals(stop: threading.Event) -> None:
    """First SIGTERM/SIGINT: finish what is in hand, commit, exit 0. A second SIGINT: exit now."""

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


if __name__ == "__main__":
    sys.exit(main())
