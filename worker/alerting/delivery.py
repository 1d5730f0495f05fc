"""Alerts in flight: handed to the sink's threads, their outcomes applied back on the worker thread.

The sink posts on its own threads; the Kafka clients and the checkpoint belong to the worker
thread. So every post carries a `settle` callback, and its outcome comes back through a queue
the loop drains between batches (`settle()`): nothing Kafka is touched from two threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from .render import Alert
from .sinks import Outcome, Sink

#: What to do once an alert's outcome is known; runs on the worker thread.
Settle = Callable[[Outcome], None]


class Deliveries:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self._outcomes: queue.SimpleQueue[tuple[Settle, Outcome]] = queue.SimpleQueue()

    def send(self, alert: Alert, abandon: threading.Event, settle: Settle) -> Future[Outcome]:
        """Post `alert` (giving up when `abandon` is set); `settle` runs on the next `settle()` after."""
        future = self.sink.submit(alert, abandon)
        future.add_done_callback(lambda done: self._outcomes.put((settle, outcome_of(done))))
        return future

    def settle(self, wait_s: float = 0.0) -> None:
        """Apply the outcomes that have arrived; optionally wait a little for the first."""
        try:
            item = self._outcomes.get(timeout=wait_s) if wait_s else self._outcomes.get_nowait()
        except queue.Empty:
            return
        while True:
            settle, outcome = item
            settle(outcome)
            try:
                item = self._outcomes.get_nowait()
            except queue.Empty:
                return


def outcome_of(future: Future[Outcome]) -> Outcome:
    if future.cancelled():
        return Outcome("abandoned", reason="cancelled")
    error = future.exception()
    if error is not None:  # a bug, not Slack being down: dead-letter rather than block the partition
        return Outcome("undeliverable", reason=f"internal error while posting: {error!r}")
    return future.result()
