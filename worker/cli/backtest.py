"""`feedback-worker rules test`: backtest rules on recorded feedback before deploying them.

    feedback-worker rules test rules/ --events history.jsonl [--templates DIR] [--show N]
    feedback-worker rules test rules/ --from-topic feedback.events --since 7d [--bootstrap HOST:PORT]

Registered on the `rules` sub-command by main.py; the work is in worker/backtest/. Exit codes as
the rest of the CLI: 0 report printed, 1 the history could not be read (e.g. Kafka down),
2 bad usage (missing file, unknown topic, invalid rules or templates).
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..notation import parse_duration
from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE

DEFAULT_SINCE = "7d"


def add_history_options(parser: argparse.ArgumentParser) -> None:
    """Where recorded answers come from: `--events FILE` or `--from-topic TOPIC [--since] [--bootstrap]` (`rules test`,
    `themes suggest`)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, metavar="FILE.jsonl", help="one feedback event per line (.gz too)")
    source.add_argument("--from-topic", metavar="TOPIC", help="read the topic itself (no consumer group, never commits)")
    parser.add_argument("--since", metavar="DURATION", help=f"with --from-topic: records of the last DURATION (default {DEFAULT_SINCE})")
    parser.add_argument("--bootstrap", metavar="HOST:PORT", help="with --from-topic: default KAFKA_BOOTSTRAP_SERVERS")


def register(rules_commands: Any) -> None:
    """Add `test` to the `rules` sub-commands (an argparse sub-parsers action)."""
    test = rules_commands.add_parser(
        "test",
        help="backtest: replay recorded feedback through rules and report the alerts they would have sent",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    test.add_argument("path", type=Path, help="a rules file or a directory of *.yaml")
    add_history_options(test)
    test.add_argument("--templates", type=Path, help="templates directory (default: TEMPLATES_PATH or templates/)")
    test.add_argument("--show", type=int, default=0, metavar="N", help="also render N sample alerts, spread over the rules")
    test.add_argument("--jobs", type=int, metavar="N", help="with --events: processes for a large file (default: the CPUs)")
    test.set_defaults(func=cmd_rules_test)


def cmd_rules_test(args: argparse.Namespace) -> int:
    # Imported here: the replay pulls in kafka, jinja2 and the rules; only when the command runs.
    from ..backtest import Replay, SourceUnavailable, render_samples, run_file, run_topic, simulation_policy
    from ..config import load_settings
    from ..loop import load_checked, make_router

    if args.show < 0:
        return _usage("--show must be 0 or more")
    if args.jobs is not None and (args.jobs < 1 or args.events is None):
        return _usage("--jobs must be 1 or more, and goes with --events")
    since = history_since(args)
    if isinstance(since, str):
        return _usage(since)

    # RulesError and ConfigError reach cli.main, which prints them as for `rules check`.
    settings = load_settings(None, rules_path=args.path, templates_path=args.templates, kafka_bootstrap_servers=args.bootstrap)
    rules, renderer = load_checked(settings)
    router = make_router(settings)
    replay = Replay(
        rules,
        settings.slack_default_channel,
        samples_per_rule=args.show,
        policy=simulation_policy(rules),
        route=lambda event, rule: router.destination(event, rule),
    )
    try:
        if args.events is not None:
            result = run_file(args.events, replay, label=", ".join(rules.files), jobs=args.jobs)
        else:
            assert since is not None
            result = run_topic(settings, args.from_topic, since, replay, label=", ".join(rules.files))
    except SourceUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE if err.usage else EXIT_FAILED
    print(result.report)
    if args.show:
        print()
        print(render_samples(replay, renderer, args.show))
    return EXIT_OK


def history_since(args: argparse.Namespace) -> timedelta | str | None:
    """The history options (`add_history_options`) checked: how far back `--from-topic` reads (None with `--events`),
    or the usage error to print."""
    if args.events is not None and (args.since is not None or args.bootstrap is not None):
        return "--since and --bootstrap go with --from-topic, not --events"
    if args.events is not None and not args.events.is_file():
        return f"events file {'is a directory' if args.events.is_dir() else 'not found'}: {args.events}"
    if args.from_topic is None:
        return None
    try:
        return parse_duration(args.since or DEFAULT_SINCE)
    except ValueError as err:
        return f"--since: {err}"


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


__all__ = ["cmd_rules_test", "register"]
