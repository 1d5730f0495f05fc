"""`feedback-worker silence add|list|expire`: manage silences in the worker state topic."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..alerting import Silences, describe, parse_matchers
from ..broker import ensure_topics, make_producer, make_state_consumer, state_topic
from ..config import load_settings
from ..notation import parse_duration
from ..stream import StateView
from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    silence = commands.add_parser("silence", help="hold back Slack alerts for matching answers (tasks still open)")
    silence.add_argument("--config", type=Path, help="YAML file of settings; environment variables win")
    actions = silence.add_subparsers(dest="silence_command", required=True)
    add = actions.add_parser("add", help="add a silence; prints its id")
    add.add_argument(
        "--match",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="e.g. customer.id=c-42 or rule=nps-detractor; repeat to AND several",
    )
    add.add_argument("--for", dest="duration", required=True, help="how long, e.g. 2h, 2d")
    add.add_argument("--reason", required=True, help="why, shown in `silence list` and the worker log")
    add.add_argument("--by", default=None, help="who (default: your user name)")
    actions.add_parser("list", help="the active silences")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id")
    silence.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    if args.silence_command == "add":  # check the input before touching Kafka
        try:
            matchers = parse_matchers(args.match)
            duration = parse_duration(args.duration)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_USAGE
    topic = state_topic(settings)
    if settings.create_topics:
        ensure_topics(settings, [topic], partitions=1, compacted=[topic])
    consumer, producer = make_state_consumer(settings), make_producer(settings)
    try:
        view = StateView(topic, settings.feedback_topic, consumer, producer)
        silences = Silences(view)
        view.sync()
        if args.silence_command == "add":
            made = silences.add(matchers, duration, args.reason, args.by or getpass.getuser())
            print(made.id)
            print(f"silenced: {describe(made)}", file=sys.stderr)
        elif args.silence_command == "list":
            active = silences.active()
            for silence in active:
                print(describe(silence))
            print(f"{len(active)} active silence(s)", file=sys.stderr)
        else:
            ended = silences.expire(args.id)
            if ended is None:
                print(f"error: no silence {args.id!r} (see `feedback-worker silence list`)", file=sys.stderr)
                return EXIT_FAILED
            print(f"expired: {describe(ended)}", file=sys.stderr)
        return EXIT_OK
    finally:
        consumer.close()
        producer.close()
