"""One backtest run: a file or a topic replayed, and its report built (the CLI and bench/backtest.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ..broker import common_config
from ..config import Settings
from ..notation import format_duration
from .files import replay_file
from .lines import file_size
from .parallel import default_jobs
from .progress import Progress
from .replay import Replay
from .report import Summary, format_report, summarize
from .topic import replay_topic


@dataclass
class Backtest:
    """One run, as the CLI and bench/backtest.py drive it."""

    replay: Replay
    summary: Summary
    report: str
    elapsed_s: float


def run_file(path: Path, replay: Replay, label: str, progress: Progress | None = None, jobs: int | None = None) -> Backtest:
    """Replay a JSONL file and build the report; progress on stderr unless given; `jobs`: default the CPUs."""
    progress = progress or Progress("replaying", file_size(path))
    started = time.monotonic()
    try:
        replay_file(path, replay, progress, jobs=default_jobs() if jobs is None else jobs)
    finally:
        progress.close()
    return _finish(replay, f"{path} (file)", label, time.monotonic() - started)


def run_topic(settings: Settings, topic: str, since: timedelta, replay: Replay, label: str) -> Backtest:
    """Replay the last `since` of a topic, up to the moment this call started."""
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
    summary = summarize(replay)
    return Backtest(replay, summary, format_report(summary, source, label, elapsed_s), elapsed_s)
