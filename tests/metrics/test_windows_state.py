"""Windows, per-partition partials and snapshot sums (metrics/windows.py, partials.py, emitter.py).

No Kafka: the MetricState's StateView gets a fake consumer and producer, and is fed the records
that PartitionMetrics.changes() would publish to the state topic.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from itertools import count

import pytest
from pydantic import ValidationError

from worker.events import FeedbackEvent
from worker.metrics import GRACE_S, MetricState, PartitionMetrics, SnapshotEmitter, Tally, snapshot_key
from worker.metrics.windows import MetricsConfig, WindowSpec, iso, pane_start, windows_of_pane
from worker.stream.state import StateView

H, D = 3600, 86400
T0 = int(datetime(2026, 11, 23, 11, 0, tzinfo=UTC).timestamp())  # an hour boundary, UTC
TOPIC = "feedback"
_ids = count()


def event(survey: str, score: int, customer: str = "c1", value: float | None = None, ts: int = T0, **extra) -> FeedbackEvent:
    return FeedbackEvent.model_validate(
        {
            "event_id": f"e{next(_ids)}",
            "occurred_at": iso(ts),
            "survey": survey,
            "score": score,
            "customer": {"id": customer, "monthly_value": value, "segment": extra.pop("segment", None)},
            **extra,
        }
    )


class Fake:
    """Stands in for the KafkaConsumer and KafkaProducer StateView is given; records what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    def assign(self, tps) -> None: ...
    def seek_to_beginning(self, *tps) -> None: ...
    def poll(self, **_) -> dict: return {}  # fmt: skip

    def flush(self) -> None: ...

    def send(self, topic: str, key: bytes, value: bytes | None, partition: int | None = None) -> None:
        self.sent.append((topic, key, value))


def apply(view: MetricState, records: list[tuple[bytes, bytes | None]]) -> None:
    """What StateView.poll does with each record it reads from the state topic."""
    for key, value in records:
        view.view._apply(key.decode(), value)


def view_of(*batches: list[tuple[bytes, bytes | None]]) -> MetricState:
    view = MetricState(StateView("state", TOPIC, Fake(), Fake()))
    for records in batches:
        apply(view, records)
    return view


# -- windows ----------------------------------------------------------------------------------


def test_window_spec_hopping_and_tumbling() -> None:
    hopping = WindowSpec.model_validate({"size": "24h", "step": "1h"})
    assert (hopping.size_s, hopping.step_s) == (D, H)
    tumbling = WindowSpec.model_validate({"size": "1h"})
    assert tumbling.step_s == tumbling.size_s == H
    assert WindowSpec.model_validate({"size": "90m", "step": "45m"}).step_s == 2700  # 45m divides a day


@pytest.mark.parametrize(
    "spec",
    [
        {"size": "1h", "step": "25m"},  # 3600 % 1500 != 0
        {"size": "1h", "step": "2h"},  # step > size
        {"size": "90s"},  # not whole minutes
        {"size": "1h", "step": "90s"},
        {"size": "14h", "step": "7h"},  # 7h divides 14h but not a day
        {"size": "36h"},  # tumbling 36h: neither divides a day nor whole days
        {"size": "1h", "every": "1m"},  # unknown key
        {"size": "soon"},
    ],
)
def test_window_spec_rejects(spec: dict) -> None:
    with pytest.raises(ValidationError):
        WindowSpec.model_validate(spec)


def test_window_spec_rejects_fractional_minutes() -> None:
    with pytest.raises(ValidationError):
        WindowSpec.model_validate({"size": "60.5s"})


def test_window_label_is_the_configured_size() -> None:
    labels = [w.label for w in MetricsConfig().windows]  # defaults: 1h, 24h every 1h, 7d every 1d
    assert labels == ["1h", "24h", "7d"]


def test_pane_start_aligns_to_utc() -> None:
    """01:30 at +02:00 is 23:30 UTC the day before: its day pane starts at that UTC midnight."""
    ts = int(datetime.fromisoformat("2026-11-23T01:30:00+02:00").timestamp())
    assert iso(pane_start(ts, D)) == "2026-11-22T00:00:00+00:00"
    assert iso(pane_start(ts, H)) == "2026-11-22T23:00:00+00:00"
    assert iso(pane_start(ts + 17 * 60, 15 * 60)) == "2026-11-22T23:45:00+00:00"  # 23:47
    assert pane_start(T0, H) == T0 and pane_start(T0 + H - 1, H) == T0


def test_windows_of_pane() -> None:
    """The pane [11:00, 12:00) lies in the 24 windows starting 12:00 the day before .. 11:00."""
    starts = list(windows_of_pane(T0, H, D))
    assert len(starts) == 24
    assert (starts[0], starts[-1]) == (T0 - 23 * H, T0)
    assert all(s <= T0 and T0 + H <= s + D for s in starts)
    assert list(windows_of_pane(T0, H, H)) == [T0]  # tumbling: only its own window
    assert len(windows_of_pane(pane_start(T0, D), D, 7 * D)) == 7


def test_metrics_config_steps() -> None:
    """Defaults: 1h, 24h every 1h, 7d every 1d -> 1h panes live 24h, 1d panes live 7d."""
    assert MetricsConfig().steps() == {H: D, D: 7 * D}
    config = MetricsConfig.model_validate({"windows": [{"size": "15m"}, {"size": "1h", "step": "15m"}]})
    assert config.steps() == {900: H}


@pytest.mark.parametrize(
    "block",
    [
        {"dimensions": ["customer.nope"]},
        {"dimensions": ["channel", "channel"]},
        {"windows": [{"size": "1h"}, {"size": "60m", "step": "30m"}]},  # same size twice
        {"windows": []},
        {"churn_probability": 1.5},
    ],
)
def test_metrics_config_rejects(block: dict) -> None:
    with pytest.raises(ValidationError):
        MetricsConfig.model_validate(block)


# -- PartitionMetrics -------------------------------------------------------------------------

SEGMENTED = MetricsConfig.model_validate({"dimensions": ["customer.segment", "attributes.region"]})


def test_event_updates_one_pane_per_step_and_dimension() -> None:
    """2 steps (1h, 1d) x 3 dimension values ("", segment, region) = 6 panes, 1 response each."""
    pm = PartitionMetrics(TOPIC, 0, SEGMENTED)
    ts = T0 + 1234
    assert pm.add(event("nps", 3, segment="smb", attributes={"region": "eu"}, ts=ts), ts, 0, ts + 5)
    day = pane_start(ts, D)
    dims = ["", "customer.segment=smb", "attributes.region=eu"]
    assert set(pm.panes) == {(step, start, d) for step, start in [(H, T0), (D, day)] for d in dims}
    assert all(p.tally.responses == 1 and p.tally.detractors == 1 and p.dirty for p in pm.panes.values())
    pm.add(event("csat", 5, ts=ts), ts, 1, ts + 5)  # no segment, no region: overall panes only
    assert {k: p.tally.responses for k, p in pm.panes.items() if p.tally.responses == 2} == {(H, T0, ""): 2, (D, day, ""): 2}


def test_replay_below_a_stamp_is_not_counted_twice() -> None:
    """Offsets 0..9 checkpointed (stamp 10), crash, restore, replay 5..14: exactly 0..14 once."""
    events = [event("nps", i % 11, customer=f"c{i}", value=10.0 * i, ts=T0 + i, segment="smb") for i in range(15)]
    now = T0 + 60
    first = PartitionMetrics(TOPIC, 3, SEGMENTED)
    for offset in range(10):
        first.add(events[offset], T0 + offset, offset, now)
    records = first.changes(next_offset=10, now=now)
    restored = view_of(records).restore(3)
    assert {p.stamp for p in restored.values()} == {10}
    second = PartitionMetrics(TOPIC, 3, SEGMENTED, restored)
    for offset in range(5, 15):
        second.add(events[offset], T0 + offset, offset, now + 1)
    once = PartitionMetrics(TOPIC, 3, SEGMENTED)
    for offset in range(15):
        once.add(events[offset], T0 + offset, offset, now)
    assert set(second.panes) == set(once.panes)
    for key, pane in once.panes.items():
        assert second.panes[key].tally == pane.tally, key
    assert second.panes[(H, T0, "")].tally.responses == 15


def test_unpublished_pane_is_recounted_on_replay() -> None:
    """A pane changed after the last checkpoint was never published: replay counts it, once."""
    a, b = event("csat", 2, customer="a", ts=T0), event("csat", 5, customer="b", ts=T0 + H)
    first = PartitionMetrics(TOPIC, 0, MetricsConfig())
    first.add(a, T0, 0, T0 + H + 1)
    records = first.changes(next_offset=1, now=T0 + H + 1)
    first.add(b, T0 + H, 1, T0 + H + 2)  # crash before the next checkpoint
    second = PartitionMetrics(TOPIC, 0, MetricsConfig(), view_of(records).restore(0))
    for offset, e in enumerate([a, b]):
        second.add(e, int(e.occurred_at.timestamp()), offset, T0 + H + 3)
    assert second.panes[(H, T0, "")].tally.csat == 1
    assert second.panes[(H, T0 + H, "")].tally.csat == 1
    assert second.panes[(D, pane_start(T0, D), "")].tally.csat == 2


def test_event_too_late_for_every_window() -> None:
    """Defaults: a 1d pane lives until start + 7d + 1h lateness. 10 days old: late everywhere."""
    pm = PartitionMetrics(TOPIC, 0, MetricsConfig())
    now = T0 + 1800
    ts = now - 10 * D
    assert pm.add(event("nps", 0, ts=ts), ts, 0, now) is False
    assert pm.late == 1
    assert set(pm.panes) == {(H, T0, ""), (D, pane_start(now, D), "")}  # the panes open at arrival
    assert all(p.tally.late == 1 and p.tally.responses == 0 and not p.tally.unhappy for p in pm.panes.values())


def test_event_late_for_some_windows_only_is_counted() -> None:
    """2 days old: every 1h-step window has closed (24h + 1h), the 7d windows are still open."""
    pm = PartitionMetrics(TOPIC, 0, MetricsConfig())
    ts = T0 - 2 * D
    assert pm.add(event("csat", 4, ts=ts), ts, 0, T0) is True
    assert pm.late == 0
    assert set(pm.panes) == {(D, pane_start(ts, D), "")}


def test_lateness_boundary() -> None:
    """1h tumbling, 1h lateness: the pane [T0, T0+1h) accepts events until T0 + 2h inclusive."""
    config = MetricsConfig.model_validate({"windows": [{"size": "1h"}], "dimensions": []})
    pm = PartitionMetrics(TOPIC, 0, config)
    assert pm.add(event("csat", 5, ts=T0), T0, 0, T0 + 2 * H) is True
    assert pm.add(event("csat", 5, ts=T0), T0, 1, T0 + 2 * H + 1) is False


def test_changes_stamps_dirty_panes_and_tombstones_expired_ones() -> None:
    config = MetricsConfig.model_validate({"windows": [{"size": "1h"}], "dimensions": []})
    pm = PartitionMetrics(TOPIC, 7, config)
    pm.add(event("csat", 1, ts=T0 + 5), T0 + 5, 41, T0 + 10)
    key = f"pane|{TOPIC}|7|{H}|{T0}|".encode()
    records = dict(pm.changes(next_offset=42, now=T0 + 10))
    assert set(records) == {key, f"position|{TOPIC}|7".encode()}
    view = view_of(list(records.items()))
    assert view.panes[(H, T0, "")][7][0] == 42 and view.panes[(H, T0, "")][7][1].csat == 1
    assert view.positions == {7: T0 + 10}
    # nothing changed: only the position heartbeat
    assert [k for k, _ in pm.changes(next_offset=42, now=T0 + 20)] == [f"position|{TOPIC}|7".encode()]
    # kept through end (T0+1h) + lateness (1h) + GRACE_S, dropped one second later
    expiry = T0 + 2 * H + GRACE_S
    assert len(pm.changes(next_offset=42, now=expiry)) == 1 and pm.panes
    records = pm.changes(next_offset=42, now=expiry + 1)
    assert (key, None) in records and not pm.panes
    apply(view, records)
    assert view.panes == {}


def test_late_event_is_not_counted_twice_on_replay() -> None:
    """Late event at offset 0 checkpointed at 11:30, crash before commit, replayed at 12:10."""
    config = MetricsConfig.model_validate({"dimensions": []})
    ts = T0 - 10 * D
    first = PartitionMetrics(TOPIC, 0, config)
    first.add(event("nps", 0, ts=ts), ts, 0, T0 + 1800)
    records = first.changes(next_offset=1, now=T0 + 1800)
    view = view_of(records)
    second = PartitionMetrics(TOPIC, 0, config, view.restore(0))
    second.add(event("nps", 0, ts=ts), ts, 0, T0 + H + 600)
    apply(view, second.changes(next_offset=1, now=T0 + H + 600))
    hour_panes = [partials[0][1].late for (step, _, _), partials in view.panes.items() if step == H]
    assert sum(hour_panes) == 1


# -- StateView + SnapshotEmitter --------------------------------------------------------------


def emitter_of(view: MetricState, config: MetricsConfig = SEGMENTED) -> SnapshotEmitter:
    return SnapshotEmitter(config, view, Fake(), "metrics", owns=lambda p: True, partitions=lambda: 2)


def two_partitions() -> tuple[list, list]:
    """Partition 0: promoter a, detractor b ($200). Partition 1: promoter c, detractor b again
    later ($300), dissatisfied d ($100, smb), and a promoter in the hour starting T0 - 24h."""
    now = T0 + 1800
    p0, p1 = PartitionMetrics(TOPIC, 0, SEGMENTED), PartitionMetrics(TOPIC, 1, SEGMENTED)
    p0.add(event("nps", 10, customer="a", ts=T0 + 1), T0 + 1, 0, now)
    p0.add(event("nps", 3, customer="b", value=200.0, ts=T0 + 2), T0 + 2, 1, now)
    p1.add(event("nps", 9, customer="c", ts=T0 + H - 1), T0 + H - 1, 0, now)
    p1.add(event("nps", 0, customer="b", value=300.0, ts=T0 + 3), T0 + 3, 1, now)
    p1.add(event("csat", 2, customer="d", value=100.0, ts=T0 + 4, segment="smb"), T0 + 4, 2, now)
    p1.add(event("nps", 10, customer="e", ts=T0 - 24 * H + 9), T0 - 24 * H + 9, 3, now)
    return p0.changes(2, now), p1.changes(4, now)


def test_snapshot_sums_the_partials_of_every_partition() -> None:
    """Overall 24h window [T0-23h, T0+1h): 5 responses (e is outside).

    NPS a, c promoters, b, b detractors: score 0; margin 1.96 x sqrt(1 / 4) x 100 = 98.
    CSAT d: 0 of 1 satisfied = 0.0. Unhappy b (latest $300), d ($100): 400 x 0.95 = 380.
    """
    emitter = emitter_of(view_of(*two_partitions()))
    start = emitter.current_start(D, T0 + 1800)
    assert start == T0 - 23 * H
    snap = emitter.snapshot((D, start, ""), final=False, now=T0 + 1800)
    assert snap.responses == 5
    assert (snap.nps.responses, snap.nps.promoters, snap.nps.detractors) == (4, 2, 2)
    assert (snap.nps.score, snap.nps.margin_of_error) == (0.0, 98.0)
    assert (snap.csat.responses, snap.csat.score) == (1, 0.0)
    assert (snap.unhappy_customers, snap.revenue_at_risk) == (2, 380.0)
    assert (snap.window.start, snap.window.end) == ("2026-11-22T12:00:00+00:00", "2026-11-23T12:00:00+00:00")
    assert snap.window.size == SEGMENTED.windows[1].label
    assert (snap.dimension, snap.final, snap.emitted_at) == ({}, False, "2026-11-23T11:30:00+00:00")
    smb = emitter.snapshot((D, start, "customer.segment=smb"), final=True, now=T0 + 1800)
    assert (smb.dimension, smb.final, smb.responses, smb.revenue_at_risk) == ({"customer.segment": "smb"}, True, 1, 95.0)
    assert emitter.tally((D, start - H, "")).responses == 1  # [T0-24h, T0): only e
    assert emitter.tally((D, start + H, "")).responses == 5  # [T0-22h, T0+2h)
    assert emitter.tally((H, T0, "")).responses == 5 and emitter.tally((H, T0 - 24 * H, "")).responses == 1


def test_reapplying_a_record_replaces_never_adds() -> None:
    first, second = two_partitions()
    view = view_of(first, second)
    emitter = emitter_of(view)
    key = (D, T0 - 23 * H, "")
    before = emitter.tally(key)
    for records in (first, second, first):
        apply(view, records)
    assert emitter.tally(key) == before
    # a newer partial of partition 0 replaces its old one: 1 new response, not 2 + 1
    p0 = PartitionMetrics(TOPIC, 0, SEGMENTED)
    p0.add(event("ces", 5, customer="z", value=10.0), T0, 5, T0 + 1900)
    apply(view, p0.changes(6, T0 + 1900))
    after = emitter.tally(key)
    assert (after.responses, after.ces, after.promoters, after.detractors) == (4, 1, 1, 1)
    assert set(after.unhappy) == {"b", "d", "z"} and after.unhappy["b"] == (T0 + 3, 300.0)


def test_view_ignores_other_input_topics() -> None:
    pm = PartitionMetrics("other-feedback", 0, SEGMENTED)
    pm.add(event("nps", 10), T0, 0, T0 + 1)
    view = view_of(pm.changes(1, T0 + 1))
    assert view.panes == {} and view.positions == {} and emitter_of(view).tally((H, T0, "")) == Tally()


def test_snapshot_key_and_current_start() -> None:
    assert snapshot_key("24h", T0, "") == "24h|2026-11-23T11:00:00+00:00|*"
    assert snapshot_key("1h", T0, "customer.segment=smb") == "1h|2026-11-23T11:00:00+00:00|customer.segment=smb"
    emitter = emitter_of(view_of())
    assert emitter.current_start(H, T0 + 1799) == T0  # tumbling: the current hour
    assert emitter.current_start(D, T0) == T0 - 23 * H  # the oldest 24h window still holding T0
    week = emitter.current_start(7 * D, T0)
    assert week == pane_start(T0, D) - 6 * D and week <= T0 < week + 7 * D


# -- the worker's way in: add_data, counted per bucket and added to the panes at checkpoints ---

CONFIGS = {
    "default": MetricsConfig(),
    "two dimensions": MetricsConfig.model_validate({"dimensions": ["customer.segment", "attributes.tier"]}),
    "one odd dimension": MetricsConfig.model_validate({"dimensions": ["attributes.tier"]}),
    "no dimension": MetricsConfig.model_validate({"dimensions": []}),
    "steps of 45m and 1h": MetricsConfig.model_validate({"windows": [{"size": "90m", "step": "45m"}, {"size": "1h"}], "lateness": "10m"}),
}


def published(records: list[tuple[bytes, bytes | None]]) -> dict[bytes, object]:
    """changes() records by key, values parsed: the same partials, whatever order the panes were made in."""
    return {key: None if value is None else json.loads(value) for key, value in records}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_add_data_publishes_exactly_what_add_publishes(name: str) -> None:
    """Late events, windows half closed, replays below restored stamps, odd dimension values (1, "1",
    True, 1.0, a list), comments with and without themes (and rules without themes: no `themes` key):
    `add_data` and `add` publish the same partials at every checkpoint."""
    config, rng = CONFIGS[name], random.Random(name)
    now = T0 + 10 * D
    tiers = [1, "1", True, 1.0, "gold", None, ["x"], "attributes.tier=1"]
    theme_sets = [None, frozenset(), frozenset({"delivery", "late"}), frozenset({"delivery"}), frozenset({"billing", "late", "delivery"})]
    events, themes = [], []
    for _ in range(3000):
        survey = rng.choice(["nps", "csat", "ces"])
        low, high = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 5)}[survey]
        ts = now - rng.choice([rng.randint(0, 2 * H), rng.randint(0, 9 * D), rng.randint(0, 60)])
        events.append(
            event(
                survey,
                rng.randint(low, high),
                customer=f"c{rng.randint(0, 9)}",
                ts=ts,
                value=rng.choice([None, 0.0, 10.0, 2500.5]),
                segment=rng.choice(["smb", "enterprise", None]),
                attributes={"tier": rng.choice(tiers)},
                comment=rng.choice([None, "", "a comment"]),
            )
        )
        themes.append(rng.choice(theme_sets))  # None: no `themes` key, as when the rules define none
    first = PartitionMetrics(TOPIC, 2, config)
    for offset in range(1000):
        first.add(events[offset], int(events[offset].occurred_at.timestamp()), offset, now, themes[offset] or frozenset())
    restored = view_of(first.changes(next_offset=1000, now=now))
    exact = PartitionMetrics(TOPIC, 2, config, restored.restore(2))
    fast = PartitionMetrics(TOPIC, 2, config, restored.restore(2))
    covered: set[str] = set()
    for offset in range(900, 3000):  # from below the stamps: a replay after a restart
        when = now + (offset - 900) * 37  # time goes on: windows close while events arrive
        ts = int(events[offset].occurred_at.timestamp())
        data = events[offset].model_dump() | ({} if themes[offset] is None else {"themes": themes[offset]})
        assert exact.add(events[offset], ts, offset, when, themes[offset] or frozenset()) == fast.add_data(data, ts, offset, when)
        if offset % 500 == 0 or offset == 2999:
            records = published(fast.changes(offset + 1, when))
            assert records == published(exact.changes(offset + 1, when)), offset
            tallies = [value["tally"] for key, value in records.items() if key.startswith(b"pane|") and value]
            covered |= {"themes" for t in tallies if t.get("themes")} | {"untagged" for t in tallies if t["comments"] > t["tagged"]}
    assert fast.late == exact.late > 0
    assert covered == {"themes", "untagged"}  # the partials compared had themes, and comments mentioning none
