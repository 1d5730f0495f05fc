"""The suggested root cause in Slack: the card's "Likely: …" line while the task is unresolved, and the resolve
dialog a click opens with the suggestion preselected (`initial_option`), as on_click decides it for SlackLink.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.harness import FakeConsumer, FakeProducer
from tests.tasks.test_fuzz_actions import TASK as OPENED
from worker.alerting import card, new_card, resolve_view
from worker.interactions import on_click
from worker.stream.state import StateView
from worker.tasks import Actor, Case, Cases, Sla, SuggestedRootCause, TaskPolicy
from worker.tasks.case import Resolution

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TASK = "task-3f1c9a2b7d4e5f60"
SUGGESTED = SuggestedRootCause(root_cause="shipping-delay", confidence=0.7249, terms=["late", "parcel"])
CASE = Case(
    task_id=TASK,
    rule_id="nps-detractor",
    severity="high",
    owner="cx-oncall",
    customer_id="c-0042",
    customer_name="Purrfect Prints",
    event_id="f-123",
    opened_at=NOW,
    sla=Sla(resolve_by=NOW + timedelta(hours=24)),
    due_in_s=86400,
    updated_at=NOW,
    keywords=["late", "parcel"],
    suggested_root_cause=SUGGESTED,
)
POLICY = TaskPolicy()


def likely(blocks: list[dict[str, Any]]) -> str | None:
    block = next((b for b in blocks if b.get("block_id") == f"followup.card:{TASK}:likely"), None)
    return None if block is None else block["elements"][0]["text"]


def cases_with(*cases: Case) -> Cases:
    table = Cases(StateView("state", "fb", FakeConsumer(partitions=1), FakeProducer({})), POLICY)
    for case in cases:
        table.save(case)
    return table


def click(task_id: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": "U0SAM", "name": "sam"},
        "actions": [{"action_id": "followup.resolve", "value": task_id}],
    }


def root_cause_select(view: dict[str, Any] | None) -> dict[str, Any]:
    assert view is not None
    return next(b for b in view["blocks"] if b.get("block_id") == "root_cause")["element"]


def test_the_card_says_which_cause_is_likely_while_the_task_is_unresolved() -> None:
    blocks = card(CASE, overdue=False)
    assert likely(blocks) == "Likely: Shipping delay (72 %): late, parcel"
    assert all(b["block_id"].startswith(f"followup.card:{TASK}:") for b in blocks)  # replaced with the card on each update
    acknowledged = card(CASE.model_copy(update={"status": "acknowledged"}), overdue=True)
    assert likely(acknowledged) == "Likely: Shipping delay (72 %): late, parcel"
    resolution = Resolution(at=NOW, by=Actor(source="cli", id="sam"), root_cause="billing-error", resolution="x", customer_contacted=False)
    assert likely(card(CASE.model_copy(update={"status": "resolved", "resolution": resolution}), overdue=False)) is None
    assert likely(card(CASE.model_copy(update={"suggested_root_cause": None}), overdue=False)) is None
    no_terms = CASE.model_copy(update={"suggested_root_cause": SUGGESTED.model_copy(update={"terms": [], "confidence": 1.0})})
    assert likely(card(no_terms, overdue=False)) == "Likely: Shipping delay (100 %)"


def test_the_card_of_a_task_just_opened_shows_it_and_escapes_the_customer_words() -> None:
    hostile = SuggestedRootCause(root_cause="other", confidence=0.5, terms=["<!channel>", "_bold_", "&"])
    blocks = new_card(OPENED.model_copy(update={"suggested_root_cause": hostile}))
    element = next(b["elements"][0] for b in blocks if b["block_id"].endswith(":likely"))
    assert element == {"type": "plain_text", "emoji": False, "text": "Likely: Other (50 %): &lt;!channel&gt;, _bold_, &amp;"}
    assert "<!channel>" not in json.dumps(blocks)


def test_the_resolve_dialog_preselects_the_suggestion() -> None:
    decision = on_click(click(TASK), cases_with(CASE), POLICY, lambda user: True)
    select = root_cause_select(decision.view)
    assert select["initial_option"] == {"text": {"type": "plain_text", "text": "shipping-delay"}, "value": "shipping-delay"}
    assert select["initial_option"] in select["options"]  # Slack refuses an initial option that is not one of them


def test_without_a_suggestion_or_one_outside_the_taxonomy_nothing_is_preselected() -> None:
    plain = CASE.model_copy(update={"suggested_root_cause": None})
    assert "initial_option" not in root_cause_select(on_click(click(TASK), cases_with(plain), POLICY, lambda user: True).view)
    assert "initial_option" not in root_cause_select(on_click(click(TASK), cases_with(), POLICY, lambda user: True).view)  # not read yet
    assert "initial_option" not in root_cause_select(resolve_view(TASK, ["billing-error", "other"], "x", "shipping-delay"))
