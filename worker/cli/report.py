"""`feedback-worker report`: reports read from the topics, without a group (the workers are not disturbed).

`report root-causes`: the root-cause digest for any range, from FOLLOWUP_TOPIC. Folds the records
into cases as the keeper does, and prints the same report the digest posts: the top causes of the
tasks resolved in [until − since, until), each against the same length of time before.

`report themes`: what each comment theme costs in one window, from its metric snapshot on
METRICS_TOPIC (the latest record per key, as the compacted topic keeps them): the table of the
snapshot's `themes`, largest NPS impact first either way (by |impact|).

Exit codes: 0 printed, 1 Kafka unreachable, the topic missing or no such snapshot, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from ..broker import TopicUnreadable, read_topic
from ..config import Settings, load_settings
from ..keeper import followup_records
from ..metrics import MetricSnapshot, percent, rank_themes, signed, themes_table
from ..notation import SourceError, format_duration, parse_duration
from ..rules import RulesError, load_rules
from ..tasks import Period, cases_from_records, plain_table, root_cause_report, summary_line
from .exits import EXIT_FAILED, EXIT_OK


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser("report", help="reports from the topics: root causes across tasks, what comment themes cost")
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
    themes = kinds.add_parser(
        "themes",
        help="what each comment theme costs in a window, from its metric snapshot: answers, NPS and the theme's impact on it, "
        "CSAT, CES, revenue at risk",
    )
    themes.add_argument("--window", default="24h", metavar="SIZE", help="a configured window, as snapshots name it (default 24h)")
    themes.add_argument(
        "--start",
        type=_moment,
        help="the window starting then, or the latest one starting before: an ISO date or time (UTC unless it says), or a "
        "duration ago like 2d (default: the latest window)",
    )
    themes.add_argument(
        "--dimension", type=_dimension, metavar="PATH=VALUE", help="one configured dimension's figure, e.g. customer.segment=smb"
    )
    themes.add_argument("--json", action="store_true", help="the snapshot's themes, ranked, as one JSON object")
    themes.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="as above; either place works")
    report.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.report_command == "themes":
        return run_themes(args)
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


# -- report themes ----------------------------------------------------------------------------------------------


def run_themes(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    dimension: dict[str, str] = args.dimension or {}
    who = "every customer" if not dimension else ", ".join(f"{path}={value}" for path, value in dimension.items())
    try:
        snapshots, skipped = latest_snapshots(settings)
    except TopicUnreadable as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    if skipped:
        print(f"note: {skipped} record(s) on {settings.metrics_topic} are not metric snapshots: skipped", file=sys.stderr)
    series = [s for s in snapshots.values() if s.window.size == args.window and s.dimension == dimension]
    if args.start is not None:
        moment = args.start(datetime.now(UTC))
        series = [s for s in series if datetime.fromisoformat(s.window.start) <= moment]
    if not series:
        sizes = sorted({s.window.size for s in snapshots.values()})
        print(
            f"error: no snapshot of a {args.window} window for {who}"
            f"{' starting by ' + _when(args.start(datetime.now(UTC))) + ' UTC' if args.start is not None else ''} on "
            f"{settings.metrics_topic} (window sizes there: {', '.join(sizes) or 'none'})",
            file=sys.stderr,
        )
        return EXIT_FAILED
    snapshot = max(series, key=lambda s: datetime.fromisoformat(s.window.start))
    ranked = rank_themes(snapshot.themes)
    if args.json:
        data = snapshot.model_dump(include={"window", "dimension", "final", "emitted_at", "responses", "comments", "tagged"})
        data["nps"] = snapshot.nps.score
        data["themes"] = [{"theme": theme} | figures.model_dump() for theme, figures in ranked]
        print(json.dumps(data, ensure_ascii=False, indent=2))
        return EXIT_OK
    print("\n".join(themes_report(snapshot, who, theme_labels(settings))))
    return EXIT_OK


def themes_report(snapshot: MetricSnapshot, who: str, label: Callable[[str], str] = str) -> list[str]:
    """The lines `report themes` prints: the window, its coverage, and the table (metrics/themes_table.py)."""
    window = snapshot.window
    state = "final" if snapshot.final else f"interim, emitted {_when(datetime.fromisoformat(snapshot.emitted_at))} UTC"
    comments, tagged = snapshot.comments, snapshot.tagged
    lines = [
        f"Themes in the {window.size} window {_when(datetime.fromisoformat(window.start))} → "
        f"{_when(datetime.fromisoformat(window.end))} UTC, {who} ({state})",
        f"{snapshot.responses} answer(s), {comments} with a comment, {tagged} mentioning a theme"
        f"{f' ({percent(tagged / comments * 100)} of the comments)' if comments else ''}; NPS {signed(snapshot.nps.score, 1)}",
        "",
    ]
    if not snapshot.themes:
        lines.append("No answer in this window mentions a theme.")
        return lines
    lines += themes_table(snapshot, label)
    lines += [
        "",
        "Largest NPS impact first, either way. Impact: the window's NPS minus the NPS of its answers that do not mention",
        "the theme, in points (negative: the theme pulls the score down). A parent theme counts its children's answers.",
        "—: no figure (no such answer; for the impact, no NPS answer without the theme).",
    ]
    return lines


def theme_labels(settings: Settings) -> Callable[[str], str]:
    """A theme id as people read it ("Delivery › Shipping delay"), from the rules' themes; the id where the rules do
    not load or no longer define it (the snapshots may be older than the rules)."""
    try:
        themes = load_rules(settings.rules_path).themes
    except (RulesError, SourceError):
        return str
    return lambda theme: themes.labels([theme])[0]


def latest_snapshots(settings: Settings, idle_s: float = 1.5) -> tuple[dict[str, MetricSnapshot], int]:
    """Every snapshot on METRICS_TOPIC, the latest per key; and how many records were not snapshots (skipped)."""
    latest = {record.key or b"": record.value for record in read_topic(settings, settings.metrics_topic, "METRICS_TOPIC", idle_s)}
    snapshots, skipped = {}, 0
    for key, value in latest.items():
        if value is None:
            continue
        try:
            snapshots[key.decode(errors="replace")] = MetricSnapshot.model_validate_json(value)
        except ValidationError:
            skipped += 1
    return snapshots, skipped


def _dimension(text: str) -> dict[str, str]:
    path, sep, value = text.partition("=")
    if not sep or not path or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PATH=VALUE, e.g. customer.segment=smb")
    return {path: value}


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
