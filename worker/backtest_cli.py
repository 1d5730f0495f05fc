"""`feedback-worker rules test`: backtest rules on recorded feedback before deploying them.

    feedback-worker rules test rules/ --events history.jsonl [--templates DIR] [--show N]
    feedback-worker rules test rules/ --from-topic feedback.events --since 7d [--bootstrap HOST:PORT]

Registered on the `rules` sub-command by cli.py; the work is in backtest*.py. Exit codes as
the rest of the CLI: 0 report printed, 1 the history could not be read (e.g. Kafka down),
2 bad usage (missing file, unknown topic, invalid rules or templates).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .durations import format_duration, parse_duration

if TYPE_CHECKING:  # the replay pulls in kafka, jinja2 and the worker: only when the command runs
    from .backtest import Replay
    from .backtest_report import Summary
    from .backtest_sources import Progress
    from .config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_SINCE = "7d"


def register(rules_commands: Any) -> None:
    """Add `test` to the `rules` sub-commands (an argparse sub-parsers action)."""
    test = rules_commands.add_parser(
        "test",
        help="backtest: replay recorded feedback through rules and report the alerts they would have sent",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    test.add_argument("path", type=Path, help="a rules file or a directory of *.yaml")
    source = test.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, metavar="FILE.jsonl", help="one feedback event per line (.gz too)")
    source.add_argument("--from-topic", metavar="TOPIC", help="read the topic itself (no consumer group, never commits)")
    test.add_argument("--since", metavar="DURATION", help=f"with --from-topic: records of the last DURATION (default {DEFAULT_SINCE})")
    test.add_argument("--bootstrap", metavar="HOST:PORT", help="with --from-topic: default KAFKA_BOOTSTRAP_SERVERS")
    test.add_argument("--templates", type=Path, help="templates directory (default: TEMPLATES_PATH or templates/)")
    test.add_argument("--show", type=int, default=0, metavar="N", help="also render N sample alerts, spread over the rules")
    test.add_argument("--jobs", type=int, metavar="N", help="with --events: processes for a large file (default: the CPUs)")
    test.set_defaults(func=cmd_rules_test)


@dataclass
class Backtest:
    """One run, as the CLI and bench/backtest.py drive it."""

    replay: Replay
    summary: Summary
    report: str
    elapsed_s: float


def cmd_rules_test(args: argparse.Namespace) -> int:
    from .backtest import Replay
    from .backtest_report import render_samples
    from .backtest_sources import SourceUnavailable
    from .config import load_settings
    from .backtest_policy import simulation_policy
    from .service import load_checked, make_router

    if args.show < 0:
        return _usage("--show must be 0 or more")
    if args.jobs is not None and (args.jobs < 1 or args.events is None):
        return _usage("--jobs must be 1 or more, and goes with --events")
    if args.events is not None and (args.since is not None or args.bootstrap is not None):
        return _usage("--since and --bootstrap go with --from-topic, not --events")
    since = None
    if args.from_topic is not None:
        try:
            since = parse_duration(args.since or DEFAULT_SINCE)
        except ValueError as err:
            return _usage(f"--since: {err}")
    if args.events is not None and not args.events.is_file():
        reason = "is a directory" if args.events.is_dir() else "not found"
        return _usage(f"events file {reason}: {args.events}")

    # RulesError and ConfigError reach cli.main, which prints them as for `rules check`.
    settings = load_settings(None, rules_path=args.path, templates_path=args.templates, kafka_bootstrap_servers=args.bootstrap)
    rules, renderer = load_checked(settings)
    router = make_router(settings)
    replay = Replay(rules, settings.slack_default_channel, samples_per_rule=args.show, policy=simulation_policy(rules),
                    route=lambda event, rule: router.destination(event, rule))
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


def run_file(path: Path, replay: Replay, label: str, progress: Progress | None = None, jobs: int | None = None) -> Backtest:
    """Replay a JSONL file and build the report; progress on stderr unless given; `jobs`: default the CPUs."""
    from .backtest_parallel import default_jobs
    from .backtest_sources import Progress, file_size, replay_file

    progress = progress or Progress("replaying", file_size(path))
    started = time.monotonic()
    try:
        replay_file(path, replay, progress, jobs=default_jobs() if jobs is None else jobs)
    finally:
        progress.close()
    return _finish(replay, f"{path} (file)", label, time.monotonic() - started)


def run_topic(settings: Settings, topic: str, since: timedelta, replay: Replay, label: str) -> Backtest:
    """Replay the last `since` of a topic, up to the moment this call started."""
    from .backtest_sources import Progress, replay_topic
    from .kafka_io import common_config

    until_ms = int(time.time() * 1000)
    since_ms = until_ms - int(since.total_seconds() * 1000)
    config = common_config(settings) | {"client_id": "feedback-worker-backtest"}
    progress = Progress(f"reading {topic}")
    started = time.monotonic()
    try:
        read = replay_topic(config, topic, since_ms, replay, progress, until_ms=until_ms)
    finally:
        progress.close()
    offsets = ", ".join(f"{p}: {first}-{last}" for p, (first, last) in sorted(read.items())) or "no records"
    source = f"topic {topic} at {settings.kafka_bootstrap_servers}, records of the last {format_duration(since)} (offsets {offsets})"
    return _finish(replay, source, label, time.monotonic() - started)


def _finish(replay: Replay, source: str, label: str, elapsed_s: float) -> Backtest:
    from .backtest_report import format_report, summarize

    summary = summarize(replay)
    return Backtest(replay, summary, format_report(summary, source, label, elapsed_s), elapsed_s)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


__all__ = ["Backtest", "cmd_rules_test", "register", "run_file", "run_topic"]
