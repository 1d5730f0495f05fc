"""Loop KPIs in the snapshots (metrics/loop.py): panes of lifecycle entries, their sums, the emitter, metric rules.

No broker: the emitter gets a fake producer (as in test_snapshot_emission.py). The figures are
compared with a computation from the same entries in tests/tasks/test_kpis.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.metrics.test_windows_state import T0, TOPIC, Fake, H, apply, event
from worker.alerting import AlertRenderer
from worker.metrics import (
    GRACE_S,
    LoopBook,
    LoopEntry,
    MetricCondition,
    MetricRule,
    MetricsConfig,
    MetricSnapshot,
    MetricState,
    MetricWatch,
    PartitionMetrics,
    SnapshotEmitter,
    holds,
    iso,
    nearest_rank,
)
from worker.rules import load_rules
from worker.stream.state import StateView

ROOT = Path(__file__).resolve().parents[2]
CONFIG = MetricsConfig.model_validate(
    {"windows": [{"size": "1h"}, {"size": "24h", "step": "1h"}], "dimensions": ["customer.segment"], "lateness": "10m", "emit_every": "30s"}
)
SMB = "customer.segment=smb"


def entry(
    kind: str,
    at: int,
    task: str = "t1",
    customer: str = "c1",
    value: float | None = None,
    seconds: float | None = None,
    within: bool | None = None,
    detail: str | None = None,
) -> LoopEntry:
    return LoopEntry(kind=kind, at=at, task_id=task, customer=customer, value=value, seconds=seconds, within_sla=within, detail=detail)  # type: ignore[arg-type]


def setup(config: MetricsConfig = CONFIG) -> tuple[MetricState, SnapshotEmitter, Fake, LoopBook]:
    producer = Fake()
    state = MetricState(StateView("state", TOPIC, Fake(), producer))
    book = LoopBook(config)
    return state, SnapshotEmitter(config, state, producer, "metrics", {0}.__contains__, lambda: 1, book), producer, book


def snapshots(producer: Fake) -> dict[str, dict]:
    """Snapshot key -> the latest snapshot sent under it."""
    return {key.decode(): json.loads(value) for topic, key, value in producer.sent if topic == "metrics"}


HOUR = "1h|2026-11-23T11:00:00+00:00"


def test_a_window_with_only_task_activity_is_emitted_with_its_loop_figures() -> None:
    _, emitter, producer, book = setup()
    book.track("t1", [SMB], [entry("opened", T0 + 60), entry("acknowledged", T0 + 660, seconds=600, within=True)])
    emitter.tick(T0 + 700)
    sent = snapshots(producer)
    overall, smb = sent[f"{HOUR}|*"], sent[f"{HOUR}|{SMB}"]
    assert overall["responses"] == 0 and overall["nps"]["score"] is None  # no answer: no score, but the window is there
    assert overall["loop"]["opened"] == 1 and overall["loop"]["acknowledged"] == 1
    assert overall["loop"]["acknowledged_within_sla"] == 1 and overall["loop"]["time_to_acknowledge"] == {"p50": 600.0, "p90": 600.0}
    assert smb["loop"] == overall["loop"]
    assert sum(key.startswith("24h|") for key in sent) == 2 * 24  # every 24h window holding that hour, overall and smb

    # Closed: the final carries the loop figures too, once.
    apply(emitter.state, [(b"position|feedback|0", json.dumps({"next_offset": 0, "at": T0 + H + 601}).encode())])
    emitter.tick(T0 + H + 602)
    final = snapshots(producer)[f"{HOUR}|*"]
    assert final["final"] is True and final["loop"]["opened"] == 1


def test_responses_and_loop_figures_share_a_snapshot() -> None:
    state, emitter, producer, book = setup()
    part = PartitionMetrics(TOPIC, 0, CONFIG)
    part.add(event("nps", 2, ts=T0 + 30, segment="smb"), T0 + 30, 0, now=T0 + 40)
    apply(state, part.changes(1, T0 + 40))
    book.track("t1", [SMB], [entry("opened", T0 + 31)])
    emitter.tick(T0 + 50)
    smb = snapshots(producer)[f"{HOUR}|{SMB}"]
    assert smb["responses"] == 1 and smb["nps"]["detractors"] == 1 and smb["loop"]["opened"] == 1


def test_track_replaces_a_tasks_entries_so_a_case_seen_again_counts_once() -> None:
    book = LoopBook(CONFIG)
    entries = [entry("opened", T0 + 60), entry("resolved", T0 + 3000, seconds=2940, within=True, detail="billing-error")]
    book.track("t1", [SMB], entries)
    book.changed.clear()
    book.track("t1", [SMB], entries)  # read again (a restart, a replayed state record)
    assert book.changed == set()  # nothing changed: no window is re-emitted for it
    tally = book.tally(H, T0, "")
    assert (tally.opened, tally.resolved, tally.to_resolve) == (1, 1, [2940])

    book.track("t1", [SMB], [*entries, entry("reopened", T0 + H + 5, detail="still_unhappy")])  # one more mark
    assert book.changed == {(H, T0 + H, ""), (H, T0 + H, SMB)}  # only the pane of the new record
    assert book.tally(H, T0, "").resolved == 1 and book.tally(H, T0 + H, "").still_unhappy == 1
    assert book.tally(24 * H, T0, "").opened == 1

    book.forget("t1")
    assert book.tally(24 * H, T0, "").opened == 0 and book.panes == {}


def test_entries_count_in_the_overall_figure_and_each_configured_dimension_only() -> None:
    book = LoopBook(CONFIG)
    book.track("t1", [SMB, "channel=sms"], [entry("opened", T0)])  # channel is not a configured dimension
    book.track("t2", [], [entry("opened", T0 + 1)])
    assert book.tally(H, T0, "").opened == 2
    assert book.tally(H, T0, SMB).opened == 1
    assert book.tally(H, T0, "channel=sms").opened == 0
    assert {dim for _, _, dim in book.panes} == {"", SMB}


def test_old_panes_expire_and_are_not_placed_again() -> None:
    _, emitter, producer, book = setup()
    old = [entry("opened", T0), entry("acknowledged", T0 + 60, seconds=60, within=True)]
    book.track("t1", [], old)
    last_close = T0 + 24 * H + 600  # the last 24h window holding hour T0 closes then (1h step; lateness 10m)
    book.expire(last_close + GRACE_S)
    assert len(book.panes) == 1  # still within the grace period: a final may need it
    book.expire(last_close + GRACE_S + 1)
    assert book.panes == {} and book.placed == {}

    # A case still open after weeks is tracked again when it changes: its old marks make no old window reappear.
    book.track("t1", [], [*old, entry("resolved", last_close + GRACE_S + 10, seconds=9e4, within=False, detail="pricing")])
    assert {start for _, start, _ in book.panes} == {last_close + GRACE_S + 10 - (last_close + GRACE_S + 10) % H}
    emitter.tick(last_close + GRACE_S + 20)
    assert all("2026-11-23T11:00:00" not in key for key in snapshots(producer))


def test_a_restart_places_old_cases_but_emits_no_long_closed_window(caplog: pytest.LogCaptureFixture) -> None:
    """On start every case is tracked before the first tick: panes already expired are dropped before they are read."""
    _, emitter, producer, book = setup()
    now = T0 + 40 * 24 * H
    book.track("old", [], [entry("opened", T0)])  # 40 days ago
    book.track("new", [], [entry("opened", now - 60)])
    emitter.tick(now)
    starts = {json.loads(value)["window"]["start"] for topic, _, value in producer.sent if topic == "metrics"}
    assert iso(now - 60 - (now - 60) % H) in starts  # the current hour, with the new task
    assert not any(start.startswith("2026-11-2") for start in starts)  # nothing of 40 days ago
    assert "closed long ago" not in caplog.text  # nor a warning that its final is missing
    assert book.tally(H, T0, "").opened == 0


@pytest.mark.parametrize(
    ("values", "p50", "p90"),
    [
        ([], None, None),
        ([7.0], 7.0, 7.0),
        ([3.0, 1.0, 2.0], 2.0, 3.0),
        ([float(v) for v in range(1, 11)], 5.0, 9.0),  # 0.9 x 10 is 9 exactly: the 9th value, not the 10th
        ([float(v) for v in range(1, 101)], 50.0, 90.0),
        ([5.0, 5.0, 1.0, 100.0], 5.0, 100.0),
    ],
)
def test_percentiles_are_nearest_rank_over_every_value(values: list[float], p50: float | None, p90: float | None) -> None:
    assert (nearest_rank(values, 50), nearest_rank(values, 90)) == (p50, p90)


def figures(*tracked: tuple[str, list[LoopEntry]]) -> dict:
    _, emitter, _, book = setup()
    for task, entries in tracked:
        book.track(task, [], entries)
    return json.loads(emitter.snapshot((24 * H, T0, ""), False, T0 + H).model_dump_json())


def test_recovery_rate_is_null_without_a_decided_answer_and_a_share_of_them_otherwise() -> None:
    resolved = entry("resolved", T0 + 10, seconds=10, within=True, detail="pricing")
    assert figures(("t1", [resolved, entry("closed", T0 + 20, detail="no_response")]))["loop"]["recovery_rate"] is None
    f = figures(
        ("t1", [entry("closed", T0 + 20, task="t1", customer="a", value=100.0, detail="recovered")]),
        ("t2", [entry("closed", T0 + 30, task="t2", customer="a", value=100.0, detail="recovered")]),  # the same customer again
        ("t3", [entry("closed", T0 + 40, task="t3", customer="b", value=None, detail="recovered")]),
        ("t4", [entry("reopened", T0 + 50, task="t4", customer="c", value=80.0, detail="still_unhappy")]),
        ("t5", [entry("reopened", T0 + 60, task="t5", customer="d", value=80.0, detail="the customer called")]),  # by a person
    )
    loop = f["loop"]
    assert (loop["closed_recovered"], loop["still_unhappy"], loop["reopened"]) == (3, 1, 2)
    assert loop["recovery_rate"] == 75.0  # 3 of the 4 answers that decided a task
    assert loop["revenue_recovered"] == 100.0  # a once (distinct customers), b has no value


def test_within_sla_root_causes_and_times() -> None:
    f = figures(
        (
            "t1",
            [
                entry("resolved", T0 + 100, task="t1", seconds=100, within=True, detail="pricing"),
                entry("reopened", T0 + 200, task="t1"),
                entry("resolved", T0 + 400, task="t1", seconds=200, within=False, detail="pricing"),
            ],
        ),
        ("t2", [entry("resolved", T0 + 500, task="t2", seconds=500, within=True, detail="billing-error")]),
        ("t3", [entry("acknowledged", T0 + 50, task="t3", seconds=50, within=None)]),  # no deadline: within
    )
    assert f["root_causes"] == {"pricing": 1, "billing-error": 1}  # distinct tasks: t1 resolved twice counts once
    loop = f["loop"]
    assert (loop["resolved"], loop["resolved_within_sla"], loop["acknowledged_within_sla"]) == (3, 2, 1)
    assert loop["time_to_resolve"] == {"p50": 200.0, "p90": 500.0}


def test_a_snapshot_of_todays_shape_still_reads_and_old_readers_ignore_the_new_fields() -> None:
    _, emitter, _, book = setup()
    book.track("t1", [], [entry("opened", T0)])
    data = json.loads(emitter.snapshot((H, T0, ""), False, T0 + 60).model_dump_json())
    today = {k: v for k, v in data.items() if k not in ("loop", "root_causes")}
    old = MetricSnapshot.model_validate(today)
    assert old.loop.opened == 0 and old.loop.recovery_rate is None and old.root_causes == {}


RECOVERY_RULE = """\
rules:
  - id: recovery-drop
    description: Fewer than half of the customers we followed up on recovered
    when:
      metric: loop.recovery_rate
      window: 24h
      lt: 50
      min_responses: 2
    severity: high
    followup: {owner: cx-leads}
    alert: {channel: "#cx-leads"}
"""


def test_a_metric_rule_on_the_recovery_rate_fires_once_when_it_drops(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RECOVERY_RULE)
    (rule,) = load_rules(path, ROOT / "templates").metric_rules
    assert rule.condition.describe() == "loop.recovery_rate < 50 over 24h"
    state, emitter, producer, book = setup()
    fired: list[MetricSnapshot] = []
    again: list[str] = []  # still firing: the alert posted under this slot should be in Slack

    def fire(rule: MetricRule, snapshot: MetricSnapshot, slot: str, still: bool) -> bool:
        if still:
            again.append(slot)
        else:
            fired.append(snapshot)
        return True

    emitter.watchers.append(MetricWatch((rule,), state, emitter.current_start, fire))
    now = T0 + 10 * H

    def answer(task: str, detail: str, at: int, kind: str = "closed") -> None:
        book.track(task, [], [entry(kind, at, task=task, customer=task, detail=detail)])
        emitter.tick(at + 30)

    answer("t1", "still_unhappy", now, kind="reopened")  # 0 % but one answer: below min_responses, unknown
    assert fired == []
    answer("t2", "still_unhappy", now + 60, kind="reopened")  # 0 % of 2: fires
    assert len(fired) == 1 and fired[0].loop.recovery_rate == 0.0
    alert = AlertRenderer(ROOT / "templates").render_metric(rule, "#cx-leads", fired[0])
    assert "loop.recovery_rate = *0.0*" in str(alert.blocks) and "*Based on*\\n2 task records in the window" in str(alert.blocks)
    answer("t3", "recovered", now + 120)  # 33 %: still low, no second alert
    assert len(fired) == 1 and again == [state.firing_slots[f"{rule.id}|"]], "still firing: is its alert in Slack?"
    answer("t4", "recovered", now + 180)  # 50 %: recovered, re-armed
    answer("t5", "recovered", now + 240)
    assert len(fired) == 1 and len(again) == 1 and state.firing_slots == {}
    for n in range(6, 10):
        answer(f"t{n}", "still_unhappy", now + 300 + n * 60, kind="reopened")  # 3 of 9: a new drop
    assert len(fired) == 2 and fired[1].loop.recovery_rate == 42.86  # at 3 of 7


def test_rules_on_loop_figures_treat_null_and_too_few_records_as_unknown() -> None:
    condition = MetricCondition.model_validate({"metric": "loop.time_to_resolve.p90", "window": "24h", "gt": 3600, "min_responses": 2})
    _, emitter, _, book = setup()
    empty = emitter.snapshot((24 * H, T0, ""), False, T0 + 60)
    assert holds(condition, empty) is None  # no resolution: null
    book.track("t1", [], [entry("resolved", T0 + 10, seconds=7200, within=False, detail="pricing")])
    assert holds(condition, emitter.snapshot((24 * H, T0, ""), False, T0 + 60)) is None  # one resolution of the two required
    book.track("t2", [], [entry("resolved", T0 + 20, task="t2", seconds=7300, within=False, detail="pricing")])
    assert holds(condition, emitter.snapshot((24 * H, T0, ""), False, T0 + 60)) is True
