"""Every slot form round-trips through its key, and the keys are the ones older workers wrote to the state topic."""

from __future__ import annotations

import pytest

from worker.delivery import (
    For,
    alert_slot,
    answer_slot,
    change_slot,
    escalated_slot,
    escalation_slot,
    metric_slot,
    parse_slot,
    reopened_slot,
    root_causes_slot,
    slot_key,
)

FORMS = [
    (alert_slot("task-1a2b"), "task-1a2b", For.ALERT),
    (answer_slot("task-1a2b", "e-9/odd:id"), "task-1a2b/e-9/odd:id", For.ANSWER),
    (change_slot("task-1a2b", "act-7"), "task-1a2b/change:act-7", For.CHANGE),
    (escalated_slot("task-1a2b", "acknowledge", 1), "task-1a2b/escalated:acknowledge:1", For.ESCALATED),
    (escalation_slot("task-1a2b", "resolve", 0), "task-1a2b/escalation:resolve:0", For.ESCALATION),
    (reopened_slot("task-1a2b", 2), "task-1a2b/reopened:2", For.REOPENED),
    (metric_slot("nps-drop|overall@1700000000"), "metric:nps-drop|overall@1700000000", For.METRIC),
    (root_causes_slot("2026-11-30T00:00:00+00:00"), "root-causes:2026-11-30T00:00:00+00:00", For.ROOT_CAUSES),
]


@pytest.mark.parametrize(("slot", "key", "kind"), FORMS, ids=[kind.value for _, _, kind in FORMS])
def test_each_form_round_trips_through_its_key(slot, key, kind) -> None:
    assert slot_key(slot) == slot.key == key
    assert parse_slot(key) == slot and slot.stands_for is kind


def test_a_metric_slot_recorded_by_an_older_worker_with_its_whole_key_names_the_same_slot() -> None:
    assert metric_slot("metric:nps-drop|overall@1") == metric_slot("nps-drop|overall@1")
