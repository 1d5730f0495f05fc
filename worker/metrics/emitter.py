"""Emit metric snapshots to METRICS_TOPIC from the merged partials of every partition.

Each (window size, dimension value) series has one owner among the replicas: the worker
that owns input partition crc32(series) mod partitions. It re-emits changed open windows
every `emit_every` (`final: false`) and, once a window has closed (end + lateness) and the
owner of every input partition has checkpointed after that moment, emits it once with
`final: true` and records that in the state topic so no replica emits it again.

With a LoopBook (loop.py), a window also gets its loop KPIs, and a pane of task activity makes its
windows changed and open like responses do: a window with tasks handled and no response is emitted too.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from datetime import UTC, datetime

from kafka import KafkaProducer

from .loop import LoopBook, loop_figures
from .partials import GRACE_S, MetricState
from .schema import MetricSnapshot, WindowRef
from .tally import Tally, figures
from .windows import MetricsConfig, iso, windows_of_pane

log = logging.getLogger(__name__)

WindowKey = tuple[int, int, str]  # (size, start, dimension)
Watcher = Callable[[MetricSnapshot, WindowKey, int], None]


def snapshot_key(size_label: str, start: int, dim: str) -> str:
    """`24h|2026-11-23T11:00:00+00:00|customer.segment=smb`; the overall figure is `...|*`."""
    return f"{size_label}|{iso(start)}|{dim or '*'}"


def dimension_of(dim: str) -> dict[str, str]:
    if not dim:
        return {}
    path, _, value = dim.partition("=")
    return {path: value}


class SnapshotEmitter:
    def __init__(
        self,
        config: MetricsConfig,
        state: MetricState,
        producer: KafkaProducer,
        metrics_topic: str,
        owns: Callable[[int], bool],
        partitions: Callable[[], int],
        loop: LoopBook | None = None,
    ) -> None:
        self.config = config
        self.loop = loop
        self.state = state
        self.producer = producer
        self.metrics_topic = metrics_topic
        self.owns = owns  # does this worker own input partition n?
        self.partitions = partitions  # how many input partitions there are
        self.lateness = int(config.lateness.total_seconds())
        self.emit_every = int(config.emit_every.total_seconds()) or 1
        self.specs = {w.size_s: w for w in config.windows}
        self.open: set[WindowKey] = set()  # windows not yet final, as far as this worker knows
        self.dirty: set[WindowKey] = set()  # windows changed since they were last emitted
        self.watchers: list[Watcher] = []
        self.emitted = 0
        self._next_interim = 0

    def tick(self, now: int) -> None:
        """Called about once a second from the worker loop."""
        if self.loop is not None:
            self.loop.expire(now)  # first: a restart places every case's entries, old panes included
        self._collect_changes()
        if now >= self._next_interim:
            self._next_interim = now + self.emit_every
            self._emit_interim(now)
        self._emit_finals(now)

    # -- which windows --------------------------------------------------------------------

    def _collect_changes(self) -> None:
        changed, self.state.changed = self.state.changed, set()
        if self.loop is not None:
            changed |= self.loop.changed
            self.loop.changed = set()
        for step, start, dim in changed:
            for spec in self.config.windows:
                if spec.step_s == step:
                    for window_start in windows_of_pane(start, step, spec.size_s):
                        key = (spec.size_s, window_start, dim)
                        self.open.add(key)
                        self.dirty.add(key)

    def close_of(self, key: WindowKey) -> int:
        size, start, _ = key
        return start + size + self.lateness

    def _owned(self, key: WindowKey) -> bool:
        size, _, dim = key
        series = f"{size}|{dim}".encode()
        return self.owns(zlib.crc32(series) % max(self.partitions(), 1))

    def _emit_interim(self, now: int) -> None:
        for key in sorted(self.dirty):
            if self.close_of(key) <= now:
                self.dirty.discard(key)  # closing: the final covers it
            elif self._owned(key):
                self.dirty.discard(key)
                self._emit(key, final=False, now=now)
            # not ours: keep it dirty, in case ownership moves here before it changes again

    def _emit_finals(self, now: int) -> None:
        n = self.partitions()
        for key in sorted(self.open):
            close = self.close_of(key)
            if close > now:
                continue
            name = self._name(key)
            if name in self.state.finals:
                self.open.discard(key)
            elif now > close + GRACE_S:
                log.warning("window %s closed long ago and no final snapshot was emitted (a partition had no owner)", name)
                self.open.discard(key)
            elif self._owned(key) and all(self.state.positions.get(p, 0) > close for p in range(n)):
                self._emit(key, final=True, now=now)
                self.state.mark_final(name, now)
                self.open.discard(key)
        self.state.expire(now)

    # -- computing and publishing ---------------------------------------------------------

    def _name(self, key: WindowKey) -> str:
        size, start, dim = key
        return snapshot_key(self.specs[size].label, start, dim)

    def tally(self, key: WindowKey) -> Tally:
        """The sum of the latest partial of every partition over the window's panes."""
        size, start, dim = key
        step = self.specs[size].step_s
        total = Tally()
        for pane_start in range(start, start + size, step):
            for _, partial in self.state.panes.get((step, pane_start, dim), {}).values():
                total.merge(partial)
        return total

    def snapshot(self, key: WindowKey, final: bool, now: int) -> MetricSnapshot:
        size, start, dim = key
        return MetricSnapshot(
            window=WindowRef(size=self.specs[size].label, start=iso(start), end=iso(start + size)),
            dimension=dimension_of(dim),
            final=final,
            emitted_at=datetime.fromtimestamp(now, UTC).isoformat(),
            **figures(self.tally(key), self.config.churn_probability),
            **(loop_figures(self.loop.tally(size, start, dim)) if self.loop is not None else {}),
        )

    def _emit(self, key: WindowKey, final: bool, now: int) -> None:
        snapshot = self.snapshot(key, final, now)
        self.producer.send(self.metrics_topic, key=self._name(key).encode(), value=snapshot.model_dump_json().encode())
        self.emitted += 1
        for watcher in self.watchers:
            watcher(snapshot, key, now)

    def current_start(self, size: int, now: int) -> int:
        """Start of the window covering "the last <size>": the oldest one still containing now."""
        step = self.specs[size].step_s
        return now - now % step + step - size
