"""`feedback-worker task show` prints what a person needs to work the task, the suggested root cause included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from worker.cli.tasks import describe
from worker.events import FeedbackEvent
from worker.tasks import FollowupSpec, SuggestedRootCause, open_task
from worker.tasks.case import opened

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
DAY = timedelta(days=1)
EVENT = FeedbackEvent.model_validate(
    {
        "event_id": "e-1",
        "occurred_at": NOW.isoformat(),
        "survey": "nps",
        "score": 2,
        "comment": "Parcel arrived late",
        "customer": {"id": "c-1", "name": "Bakkerij Bol"},
    }
)


def test_show_names_the_likely_root_cause_with_its_confidence_and_words_until_the_task_is_resolved() -> None:
    task = open_task(EVENT, "nps-detractor", ["nps-detractor"], "high", FollowupSpec(), NOW)
    likely = SuggestedRootCause(root_cause="shipping-delay", confidence=0.724, terms=["late", "parcel"])
    text = describe(opened(task.model_copy(update={"suggested_root_cause": likely}), None, DAY, "#cx-alerts"))
    assert "  likely     shipping-delay (72%): late, parcel" in text.splitlines()
    assert "likely" not in describe(opened(task, None, DAY, "#cx-alerts"))
