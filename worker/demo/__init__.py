"""`feedback-worker demo`, and the realistic feedback it (and the benchmark) generates."""

from .runner import print_metrics, print_summary, read_all, run_demo
from .samples import FeedbackGenerator

__all__ = ["FeedbackGenerator", "print_metrics", "print_summary", "read_all", "run_demo"]
