"""Progress of a long backtest on stderr: a tqdm bar on a terminal, else a line every few seconds.

Nothing is printed for a run shorter than `delay_s`, so small backtests and tests stay quiet.
tqdm draws the bar (width, percentage, elapsed and remaining time); the replay calls
`update` once per chunk of lines, and this class decides how often that reaches the screen.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

_WITH_TOTAL = "{desc} |{bar}| {percentage:3.0f}% [{elapsed}<{remaining}]{postfix}"  # a file: its bytes
_WITHOUT_TOTAL = "{desc}: {elapsed}{postfix}"  # a topic: no end known


class Progress:
    def __init__(
        self, label: str, total_bytes: int | None = None, stream: TextIO | None = None, delay_s: float = 1.0, interval_s: float = 5.0
    ) -> None:
        self.label = label
        self.total = total_bytes
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.next = self.started + (delay_s if self.tty else interval_s)
        self.interval = 0.1 if self.tty else interval_s
        self.bar: tqdm[Any] | None = None  # created at the first draw: a short run never shows one

    def update(self, events: int, done_bytes: int | None = None) -> None:
        now = time.monotonic()
        if now < self.next:
            return
        self.next = now + self.interval
        elapsed = now - self.started
        rate = f"{events / elapsed:,.0f} events/s"
        by_bytes = self.total is not None and done_bytes is not None
        if self.tty:
            if self.bar is None:
                # delay > 0: tqdm draws nothing by itself; refresh() below draws at this class's pace.
                self.bar = tqdm(
                    desc=self.label,
                    total=self.total if by_bytes else None,
                    file=self.stream,
                    leave=False,
                    dynamic_ncols=True,
                    delay=1e-9,
                    bar_format=_WITH_TOTAL if by_bytes else _WITHOUT_TOTAL,
                )
            self.bar.n = done_bytes if by_bytes and done_bytes is not None else events
            self.bar.set_postfix_str(f"{events:,} events, {rate}", refresh=False)
            self.bar.refresh()
            return
        percent = f" ({done_bytes / self.total:.0%})" if by_bytes and self.total and done_bytes is not None else ""
        self.stream.write(f"{self.label}: {events:,} events{percent}, {rate}, {elapsed:.0f} s\n")
        self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()  # leave=False: the bar is wiped, the report follows on a clean line
