"""`feedback-worker themes suggest`: new themes, suggested from the comments no theme covers.

    feedback-worker themes suggest rules/ --events answers.jsonl [--min-count 3] [--max 10] [--out FILE]
    feedback-worker themes suggest rules/ --from-topic feedback.events --since 7d [--bootstrap HOST:PORT]

The answers are read as `rules test` reads them (worker/backtest/: a JSONL file, .gz too, or the
records of a topic in a time range, read without a group and never committed); the themes are those
of the rules path; the grouping is worker/themes/discovery.py. A summary goes to stderr, the YAML to
stdout (or --out). Exit codes: 0 printed, 1 the answers could not be read (Kafka down), 2 usage
(missing file, unknown topic, invalid rules).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..backtest import Progress, Replay, SourceUnavailable, run_file, run_topic
from ..events import event_data, is_unhappy
from ..rules import RuleSet, load_rules
from ..themes import Answer, discover, to_yaml
from .backtest import add_history_options, history_since
from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE

INVALID = "not a valid feedback event"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `themes` (with `suggest`) to the top-level sub-commands."""
    themes = commands.add_parser("themes", help="work with comment themes: suggest new ones")
    kinds = themes.add_subparsers(dest="themes_command", required=True)
    suggest = kinds.add_parser(
        "suggest",
        help="group the comments no theme covers into candidate themes, printed as YAML to paste into a rules file",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    suggest.add_argument("path", type=Path, help="a rules file or a directory of *.yaml: its `themes:` are the existing themes")
    add_history_options(suggest)
    suggest.add_argument("--min-count", type=int, default=3, metavar="N", help="comments a candidate needs (default 3)")
    suggest.add_argument("--max", type=int, default=10, metavar="N", help="candidates at most, largest first (default 10)")
    suggest.add_argument("--terms", type=int, default=5, metavar="N", help="top terms per candidate (default 5)")
    suggest.add_argument("--out", type=Path, metavar="FILE", help="write the YAML there instead of stdout")
    suggest.set_defaults(func=cmd_themes_suggest)


class Answers(Replay):
    """A Replay that keeps each valid answer's comment, language and unhappiness, instead of replaying rules.

    So `suggest` reads files and topics exactly as `rules test` does (the same readers feed it)."""

    def __init__(self, rules: RuleSet) -> None:
        super().__init__(rules)
        self.answers: list[Answer] = []

    def feed(self, values: Sequence[bytes | None], where: Callable[[int], str], skip_blank: bool = True) -> None:
        for index, value in enumerate(values):
            if skip_blank and value is not None and not value.strip():
                self.blank += 1
                continue
            self.read += 1
            data = event_data(value or b"")
            if data is None:
                self.invalid[INVALID] += 1
                self.invalid_at.setdefault(INVALID, where(index))
                continue
            self.valid += 1
            ts = data["occurred_at"].timestamp()  # the span, as `rules test` keeps it (its report needs one)
            self.first_ts, self.last_ts = min(self.first_ts, ts), max(self.last_ts, ts)
            if data["comment"]:
                unhappy = is_unhappy(data["survey"], data["score"])
                self.answers.append(Answer(data["comment"], data.get("language"), unhappy))


def cmd_themes_suggest(args: argparse.Namespace) -> int:
    from ..config import load_settings

    for name, value in (("--min-count", args.min_count), ("--max", args.max), ("--terms", args.terms)):
        if value < 1:
            return _usage(f"{name} must be 1 or more")
    since = history_since(args)
    if isinstance(since, str):
        return _usage(since)

    rules = load_rules(args.path)  # a RulesError reaches cli.main, which prints it as `rules check` does (exit 2)
    themes = rules.themes
    reader = Answers(rules)
    try:
        if args.events is not None:
            run_file(args.events, reader, label=", ".join(rules.files), progress=Progress("reading answers"), jobs=1)
        else:
            assert since is not None
            settings = load_settings(None, rules_path=args.path, kafka_bootstrap_servers=args.bootstrap)
            run_topic(settings, args.from_topic, since, reader, label=", ".join(rules.files))
    except SourceUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE if err.usage else EXIT_FAILED

    found = discover(reader.answers, themes, min_count=args.min_count, max_candidates=args.max, terms=args.terms)
    invalid = sum(reader.invalid.values())
    skipped = f" ({invalid} invalid skipped, the first at {reader.invalid_at[INVALID]})" if invalid else ""
    print(
        f"{reader.read} answers read{skipped}, {found.commented} commented, {found.covered} covered by the "
        f"{len(themes)} existing theme(s), {found.uncovered} not; {len(found.candidates)} candidate theme(s) "
        f"for {sum(c.count for c in found.candidates)} of those",
        file=sys.stderr,
    )
    text = to_yaml(found.candidates)
    if args.out is not None:
        try:
            args.out.write_text(text, encoding="utf-8")
        except OSError as err:
            return _usage(f"cannot write {args.out}: {err.strerror}")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


__all__ = ["Answers", "cmd_themes_suggest", "register"]
