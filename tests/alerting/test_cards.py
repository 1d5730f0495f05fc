"""The task card on an alert and the resolve dialog: the public contract of their ids, each state, untrusted text.

`python -m tests.alerting.test_cards > docs/slack-card.json` regenerates the example docs/tasks.md links.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import ROOT
from worker.alerting import card, is_card, resolve_view, with_card
from worker.tasks import DEFAULT_ROOT_CAUSES, STEPS, Actor, Case, Sla
from worker.tasks.case import Escalation, Resolution

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
BEN = Actor(source="slack", id="U02BEN", name="ben")
BASE = Case(
    task_id="task-3f1c9a2b7d4e5f60",
    rule_id="nps-detractor",
    severity="high",
    owner="cx-oncall",
    assignee="U01ANNA",
    customer_id="c-0042",
    customer_name="Purrfect Prints",
    event_id="f-123",
    opened_at=NOW,
    sla=Sla(acknowledge_by=NOW + timedelta(hours=1), resolve_by=NOW + timedelta(hours=24)),
    due_in_s=86400,
    updated_at=NOW,
)


def example_cards() -> dict[str, Any]:
    states = {
        "open": card(BASE, overdue=False),
        "acknowledged, two steps ticked": card(
            BASE.model_copy(update={"status": "acknowledged", "acknowledged_by": BEN, "steps": {"hear": True, "empathize": True}}),
            overdue=False,
        ),
        "overdue and escalated": card(
            BASE.model_copy(update={"escalations": [Escalation(reason="not_acknowledged", level=1, at=NOW)]}), overdue=True
        ),
        "resolved": card(
            BASE.model_copy(
                update={
                    "status": "resolved",
                    "resolution": Resolution(
                        at=NOW, by=BEN, root_cause="shipping-delay", resolution="Sent a new box by express", customer_contacted=True
                    ),
                }
            ),
            overdue=False,
        ),
    }
    return {
        "_comment": "The task card under an alert, in each state (the last blocks of the message; the template's blocks stay "
        "above), and the resolve dialog. Generated from worker/alerting/cards.py.",
        "card": states,
        "resolve dialog": resolve_view(BASE.task_id, list(DEFAULT_ROOT_CAUSES), "Purrfect Prints"),
    }


def elements(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in blocks if b["type"] == "actions" for e in b["elements"]}


def status(blocks: list[dict[str, Any]]) -> str:
    return next(b["text"]["text"] for b in blocks if b.get("block_id", "").endswith(":status"))


def test_an_open_card_has_the_public_ids_each_carrying_the_task() -> None:
    blocks = card(BASE, overdue=False)
    found = elements(blocks)
    assert set(found) == {"followup.acknowledge", "followup.resolve", "followup.assign", "followup.steps"}
    assert found["followup.acknowledge"]["value"] == found["followup.resolve"]["value"] == BASE.task_id
    assert [o["value"] for o in found["followup.steps"]["options"]] == list(STEPS)
    assert found["followup.assign"]["type"] == "users_select" and found["followup.assign"]["initial_user"] == "U01ANNA"
    assert all(b["block_id"].startswith(f"followup.card:{BASE.task_id}:") for b in blocks)  # pickers learn their task here
    assert status(blocks) == "*Open* · <@U01ANNA> · due 2026-12-01 09:00 UTC"


def test_each_state_shows_what_a_teammate_needs_and_only_the_buttons_that_apply() -> None:
    states = example_cards()["card"]
    taken = states["acknowledged, two steps ticked"]
    assert "taken by <@U02BEN>" in status(taken) and "followup.acknowledge" not in elements(taken)
    assert [o["value"] for o in elements(taken)["followup.steps"]["initial_options"]] == ["hear", "empathize"]
    assert ":warning: overdue" in status(states["overdue and escalated"]) and "escalated (not acknowledged)" in status(
        states["overdue and escalated"]
    )
    resolved = states["resolved"]
    assert set(elements(resolved)) == {"followup.reopen"}
    assert status(resolved) == (
        ":white_check_mark: *Resolved* by <@U02BEN> · root cause *shipping-delay* · customer contacted\n>Sent a new box by express"
    )


def test_text_on_the_card_cannot_ping_or_break_formatting() -> None:
    hostile = BASE.model_copy(
        update={
            "status": "resolved",
            "resolution": Resolution(
                at=NOW,
                by=Actor(source="cli", id="eve", name="<!channel> eve"),
                root_cause="other",
                resolution="<@U999> & <!here>",
                customer_contacted=False,
            ),
        }
    )
    text = status(card(hostile, overdue=False))
    assert "<!channel>" not in text and "<@U999>" not in text and "<!here>" not in text
    assert "&lt;!channel&gt; eve" in text and "&lt;@U999&gt; &amp; &lt;!here&gt;" in text


def test_an_update_replaces_the_card_and_keeps_what_the_template_rendered() -> None:
    alert = [
        {"type": "header", "text": {"type": "plain_text", "text": "HIGH"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "x"}},
    ]
    first = with_card(alert, card(BASE, overdue=False))
    second = with_card(first, card(BASE.model_copy(update={"status": "acknowledged"}), overdue=False))
    assert [b for b in second if not is_card(b)] == alert and "*Acknowledged*" in status(second)
    assert len(second) == len(alert) + len(card(BASE, overdue=False))  # one card, not two


def test_the_resolve_dialog_offers_the_taxonomy_and_names_its_task() -> None:
    view = resolve_view(BASE.task_id, ["shipping-delay", "other"], "Purrfect <Prints>")
    assert (view["callback_id"], view["private_metadata"]) == ("followup.resolve", BASE.task_id)
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert [o["value"] for o in blocks["root_cause"]["element"]["options"]] == ["shipping-delay", "other"]
    assert blocks["resolution"]["element"]["multiline"] is True
    assert blocks["customer_contacted"]["element"]["type"] == "checkboxes"
    assert "Purrfect &lt;Prints&gt;" in json.dumps(view)


def test_the_documented_example_is_current() -> None:
    documented = json.loads((ROOT / "docs" / "slack-card.json").read_text())
    assert documented == json.loads(json.dumps(example_cards())), "regenerate: python -m tests.alerting.test_cards > docs/slack-card.json"


if __name__ == "__main__":
    print(json.dumps(example_cards(), indent=2, ensure_ascii=False))
