"""Without SLACK_BOT_TOKEN: alerts printed as they would be posted (the demo, a dry run)."""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import Future
from typing import Any, TextIO

from ..alerting import Alert
from .sinks import InDoubt, Outcome, Search


class StdoutSink:
    """Without SLACK_BOT_TOKEN: print the alert as it would be posted, immediately."""

    def __init__(self, stream: TextIO | None = None, show_blocks: bool = False) -> None:
        self.stream = stream or sys.stdout
        self.show_blocks = show_blocks
        self._lock = threading.Lock()

    def submit(self, alert: Alert, abandon: threading.Event, hold: InDoubt | None = None) -> Future[Outcome]:
        kind = "reply" if alert.thread_ts or alert.parent is not None else "alert"
        lines = [f"[{kind} → {alert.channel}] {alert.text}"]
        if self.show_blocks:
            lines.append(json.dumps({"blocks": alert.blocks, "metadata": alert.metadata}, ensure_ascii=False))
        with self._lock:
            print("\n".join(lines), file=self.stream, flush=True)
        return _done(Outcome("sent", channel=alert.channel, ts=f"stdout-{id(alert)}"))

    def find(self, search: Search, abandon: threading.Event) -> Future[Outcome]:
        return _done(Outcome("found"))  # stdout keeps no history: nothing is found

    def update_card(self, channel: str, ts: str, card: list[dict[str, Any]], abandon: threading.Event) -> Future[Outcome]:
        status = next((b["text"]["text"] for b in card if b.get("type") == "section"), "")
        with self._lock:
            print(f"[card {ts} → {channel}] {status}", file=self.stream, flush=True)
        return _done(Outcome("sent", channel=channel, ts=ts))

    def close(self) -> None:
        pass


def _done(outcome: Outcome) -> Future[Outcome]:
    future: Future[Outcome] = Future()
    future.set_result(outcome)
    return future
