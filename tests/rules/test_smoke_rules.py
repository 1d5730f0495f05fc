from worker.events import FeedbackEvent
from worker.rules import load_rules


def test_shipped_rules_load_and_a_detractor_matches():
    rules = load_rules("rules", "templates")
    event = FeedbackEvent.model_validate(
        {"event_id": "e1", "occurred_at": "2026-11-24T10:00:00+00:00", "survey": "nps", "score": 3, "customer": {"id": "c1"}}
    )
    match = rules.evaluate(event)
    assert match is not None and match.owner.id == "nps-detractor"
