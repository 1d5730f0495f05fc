"""Replay a JSONL file (gzip if it ends in .gz), in one process or split over several (parallel.py)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

from .lines import line_namer, open_events, read_lines
from .parallel import parallel_possible, replay_file_parallel
from .progress import Progress
from .replay import Replay


def replay_file(path: Path, replay: Replay, progress: Progress | None = None, jobs: int = 1) -> None:
    """Feed every line of a JSONL file (gzip if it ends in .gz) to the replay.

    `jobs` > 1: split a large plain file over that many processes (see parallel.py);
    the result is the same as one process gives.
    """
    raw = open_events(path)
    try:
        if jobs > 1 and path.suffix != ".gz":
            size = os.fstat(raw.fileno()).st_size
            if parallel_possible(replay, size, jobs):
                raw.close()
                replay_file_parallel(path, size, replay, jobs, progress)
                return
        stream: Any = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        line = 0
        for chunk in read_lines(stream, 0, None, f"events file {path}"):
            replay.feed(chunk, line_namer(line))
            line += len(chunk)
            if progress is not None:
                progress.update(replay.read, raw.tell())
    finally:
        raw.close()
