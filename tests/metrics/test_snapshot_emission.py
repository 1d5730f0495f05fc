"""When snapshots are emitted: interim while open, final exactly once after close, by one owner.

A fake clock drives SnapshotEmitter.tick(); the state topic is simulated with the records
PartitionMetrics.changes() publishes (see test_windows_state.py for the fakes).
"""

from __future__ import annotations

import json

from tests.metrics.test_windows_state import T0, TOPIC, Fake, H, apply, event
from worker.metrics import MetricsConfig, MetricState, PartitionMetrics, SnapshotEmitter
from worker.stream.state import StateView

CONFIG = MetricsConfig.model_validate({"windows": [{"size": "1h"}], "dimensions": [], "lateness": "10m", "emit_every": "30s"})
CLOSE = T0 + H + 600  # the 1h window starting at T0 closes at its end + lateness


def setup(partitions: int = 2, owned: set[int] | None = None) -> tuple[MetricState, SnapshotEmitter, Fake, list[PartitionMetrics]]:
    producer = Fake()
    view = MetricState(StateView("state", TOPIC, Fake(), producer))
    owned = set(range(partitions)) if owned is None else owned
    emitter = SnapshotEmitter(CONFIG, view, producer, "metrics", owned.__contains__, lambda: partitions)
    parts = [PartitionMetrics(TOPIC, p, CONFIG) for p in range(partitions)]
    return view, emitter, producer, parts


def snapshots(producer: Fake) -> list[dict]:
    return [json.loads(value) for topic, _, value in producer.sent if topic == "metrics"]


def checkpoint(view: MetricState, part: PartitionMetrics, next_offset: int, now: int) -> None:
    apply(view, part.changes(next_offset, now))


def test_open_window_is_re_emitted_when_changed_and_final_once_after_every_partition_checkpointed() -> None:
    view, emitter, producer, (p0, p1) = setup()
    p0.add(event("nps", 10, ts=T0 + 60), T0 + 60, 0, now=T0 + 120)
    p1.add(event("nps", 0, ts=T0 + 90), T0 + 90, 0, now=T0 + 120)
    checkpoint(view, p0, 1, T0 + 120)
    checkpoint(view, p1, 1, T0 + 120)

    emitter.tick(T0 + 130)
    (interim,) = snapshots(producer)
    assert interim["final"] is False and interim["responses"] == 2 and interim["nps"]["score"] == 0.0

    emitter.tick(T0 + 135)  # nothing changed: nothing re-emitted
    assert len(snapshots(producer)) == 1

    # Closed, but partition 1's owner has not checkpointed since the close: its figure may still grow.
    checkpoint(view, p0, 1, CLOSE + 1)
    emitter.tick(CLOSE + 2)
    assert len(snapshots(producer)) == 1

    checkpoint(view, p1, 1, CLOSE + 3)
    emitter.tick(CLOSE + 4)
    final = snapshots(producer)[-1]
    assert final["final"] is True and final["responses"] == 2
    assert view.finals == {"1h|2026-11-23T11:00:00+00:00|*": CLOSE + 4}  # recorded in the state topic too
    assert any(key == b"final|feedback|1h|2026-11-23T11:00:00+00:00|*" for _, key, _ in producer.sent)

    emitter.tick(CLOSE + 60)
    assert len(snapshots(producer)) == 2  # final exactly once


def test_a_final_recorded_by_another_replica_is_not_emitted_again() -> None:
    view, emitter, producer, (p0,) = setup(partitions=1)
    p0.add(event("csat", 5, ts=T0 + 60), T0 + 60, 0, now=T0 + 120)
    checkpoint(view, p0, 1, CLOSE + 1)
    apply(view, [(b"final|feedback|1h|2026-11-23T11:00:00+00:00|*", json.dumps({"at": CLOSE}).encode())])
    emitter.tick(CLOSE + 2)
    assert snapshots(producer) == []


def test_only_the_owner_of_a_series_emits_it() -> None:
    view, _, _, (p0, p1) = setup()
    p0.add(event("nps", 9, ts=T0 + 60), T0 + 60, 0, now=T0 + 120)
    checkpoint(view, p0, 1, T0 + 120)
    emitted = []
    for owned in ({0}, {1}):
        producer = Fake()
        emitter = SnapshotEmitter(CONFIG, view, producer, "metrics", owned.__contains__, lambda: 2)
        view.changed = {key for key in view.panes}  # each replica's view saw the same records
        emitter.tick(T0 + 130)
        emitted.append(len(snapshots(producer)))
    assert sorted(emitted) == [0, 1]  # exactly one replica emits the overall 1h series
