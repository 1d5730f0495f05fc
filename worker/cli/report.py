"""`feedback-worker report root-causes`: the root-cause digest for any range, from FOLLOWUP_TOPIC.

Reads the topic from the beginning without a group (the workers are not disturbed), folds the
records into cases as the keeper does, and prints the same report the digest posts: the top
causes of the tasks resolved in [until − since, until), each against the same length of time
before. Exit codes: 0 printed, 1 Kafka unreachable or the topic missing, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..config import load_settings
from ..keeper import TopicUnreadable, followup_records
from ..notation import format_duration, parse_duration
from ..tasks import Period, cases_from_records, plain_table, root_cause_report, summary_line
from .exits import EXIT_FAILED, EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="reports from the topics: root causes across tasks")
    report.add_argument("--config", type=Path, help="YAML file of settings; environment variables win")
    kinds = report.add_subparsers(dest="report_command", required=True)
    causes = kinds.add_parser("root-causes", help="the top root causes of the tasks resolved in a range, against the range before")
    causes.add_argument("--since", type=_duration, default=timedelta(days=30), help="how far back from --until (default 30d)")
    causes.add_argument(
        "--until", type=_moment, help="the end: an ISO date or time (UTC unless it says), or a duration ago like 7d (default: now)"
    )
    causes.add_argument("--top", type=int, default=5, choices=range(1, 21), metavar="N", help="causes per ranking (default 5)")
    causes.add_argument("--json", action="store_true", help="the report as one JSON object")
    causes.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="as above; either place works")
    report.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    now = datetime.now(UTC)
    until = args.until(now) if args.until is not None else now
    period = Period(until - args.since, until)
    previous = Period(period.start - args.since, period.start)
    try:
        records, skipped = followup_records(settings)
    except TopicUnreadable as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    cases = cases_from_records(records)
    report = root_cause_report(cases.values(), period, previous, settings.metrics.churn_probability, top=args.top)
    if skipped:
        print(f"note: {skipped} record(s) on {settings.followup_topic} are not task records: skipped", file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        return EXIT_OK
    print(
        f"Root causes of tasks resolved {_when(period.start)} → {_when(period.end)} UTC "
        f"({format_duration(args.since)}), against the {format_duration(args.since)} before; "
        f"{len(cases)} task(s) on {settings.followup_topic}"
    )
    print()
    print(plain_table(report))
    print()
    print(summary_line(report))
    return EXIT_OK


def _duration(text: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _moment(text: str) -> Callable[[datetime], datetime]:
    """--until: `2026-03-30`, `2026-03-30T09:00+02:00` (UTC unless it says), or `7d` (that long before now)."""
    try:
        ago = parse_duration(text)
        return lambda now: now - ago
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a date or time (2026-03-30, 2026-03-30T09:00+02:00) nor a duration ago (7d)"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return lambda now: moment.astimezone(UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
