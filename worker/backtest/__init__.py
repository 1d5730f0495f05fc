"""Backtest: replay recorded feedback through rules and report what the worker would have done.

replay.py    the counting loop (the worker's own validate → evaluate), and what it counts
policy.py    throttling and grouping simulated by event time
lines.py     JSONL read in line-aligned chunks
files.py     a file replayed, in one process or several (parallel.py)
topic.py     the feedback topic replayed, without a group, never committed
progress.py  the progress bar or lines on stderr
report.py    the figures and the printed report
runner.py    one run: source → replay → report (for the CLI and bench/backtest.py)
"""

from .files import replay_file
from .policy import GROUPED, THROTTLED, simulation_policy
from .progress import Progress
from .replay import FUTURE_REASON, AlertPolicy, Replay, Sample, SourceUnavailable, pick_samples, static_route
from .report import Summary, format_report, render_samples, summarize
from .runner import Backtest, run_file, run_topic
from .topic import IDLE_STOP_S, replay_topic

__all__ = [
    "AlertPolicy",
    "Backtest",
    "FUTURE_REASON",
    "GROUPED",
    "IDLE_STOP_S",
    "Progress",
    "Replay",
    "Sample",
    "SourceUnavailable",
    "Summary",
    "THROTTLED",
    "format_report",
    "pick_samples",
    "render_samples",
    "replay_file",
    "replay_topic",
    "run_file",
    "run_topic",
    "simulation_policy",
    "static_route",
    "summarize",
]
