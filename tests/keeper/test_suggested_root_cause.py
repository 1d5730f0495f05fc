"""The suggested root cause, as a team sees it: learned from the tasks they resolved, on the new task's
followup.opened, on its card in Slack and preselected in its resolve dialog; the same from a second replica
and from a keeper that took over from the state topic.

In-process (tests/harness.py): the worker as service.py builds it, posting to the fake Slack through the real
SlackSink, with Slack interactivity on (the card); the tasks resolved as a helpdesk would, on the actions topic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import event_bytes, wait_for
from tests.fake_slack import FakeSlack
from tests.harness import FakeConsumer, FakeProducer, Harness
from worker.interactions import on_click
from worker.stream.state import StateView
from worker.tasks import Cases, CauseModel, task_id_for
from worker.themes import DEFAULT_MIN_EXAMPLES

PLAIN_RULES = """
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    alert: {channel: "#cx-alerts"}
    followup: {owner: cx-team, due_in: 1h, recheck: none}
"""
RULES = (
    """
themes:
  - id: shipping-delay
    label: Shipping delay
    terms: {en: [late, delay, delayed]}
"""
    + PLAIN_RULES
)
API = {"source": "api", "id": "zendesk", "name": "Zendesk"}
SHIPPING = [
    "The parcel arrived late",
    "Parcel delayed again",
    "My order is late, where is the parcel",
    "Delivery was late and the courier lost the parcel",
    "Late delivery, again",
    "The parcel never came",
    "Courier delayed my parcel twice",
    "Still waiting for the delivery, very late",
    "Tracking says the parcel is stuck",
    "Late again, third order in a row",
]
BILLING = [
    "I was charged twice",
    "The invoice is wrong",
    "Charged twice on my card",
    "Wrong amount on the invoice",
    "You billed me for a cancelled plan",
    "Double charge this month",
    "The invoice shows the old price",
    "Refund for the double charge never came",
    "Billing charged my card twice",
    "Invoice amount is wrong again",
]
TRAINING = [(comment, "shipping-delay") for comment in SHIPPING] + [(comment, "billing-error") for comment in BILLING]
PROBE = "My parcel arrived late, again"


def opened(worker: Harness, task_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: next(
            (r for r in worker.records(worker.settings.followup_topic) if r["task_id"] == task_id and r["type"] == "followup.opened"), None
        ),
        30,
        f"followup.opened of {task_id}",
    )


def answer(worker: Harness, event_id: str, comment: str) -> str:
    """An NPS detractor with this comment, from a customer of its own (so it opens a task, joining none)."""
    customer = {"id": f"c-{event_id}", "name": f"Customer {event_id}", "segment": "smb", "monthly_value": 100.0}
    worker.send(event_bytes(event_id=event_id, score=2, comment=comment, customer=customer), key=customer["id"].encode())
    return task_id_for(event_id)


def resolve(worker: Harness, task_id: str, cause: str, action_id: str) -> None:
    body = {"action": "resolve", "task_id": task_id, "actor": API, "action_id": action_id, "root_cause": cause, "resolution": "sorted"}
    worker.send(json.dumps(body).encode(), key=task_id.encode(), topic="actions")


def applied(worker: Harness) -> None:
    """Every answer and action sent so far handled and committed."""
    wait_for(lambda: worker.consumer.all_committed("fb") and worker.consumer.all_committed("actions"), 30, "everything committed")


def alert_of(fake_slack: FakeSlack, task_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: next(
            (
                m
                for m in fake_slack.messages
                if m["metadata"]["event_type"] == "feedback_alert" and m["metadata"]["event_payload"]["task_id"] == task_id
            ),
            None,
        ),
        30,
        f"the alert of {task_id}",
    )


def likely(message: dict[str, Any], task_id: str) -> str | None:
    block = next((b for b in message["blocks"] if b.get("block_id") == f"followup.card:{task_id}:likely"), None)
    return None if block is None else block["elements"][0]["text"]


def dialog(fake_slack: FakeSlack, worker: Harness, message: dict[str, Any], task_id: str) -> dict[str, Any]:
    """What a click on the card's Resolve… button opens (the payload as Slack sends it, decided as SlackLink does)."""
    payload = fake_slack.block_actions("#cx-alerts", message["ts"], "followup.resolve", value=task_id)
    decision = on_click(payload, worker.worker.keeper.cases, worker.settings.task_policy, lambda user: True)
    assert decision.view is not None
    return next(b for b in decision.view["blocks"] if b.get("block_id") == "root_cause")["element"]


@pytest.fixture
def trained(start_harness: Callable[..., Harness], fake_slack: FakeSlack) -> Harness:
    """A worker whose team resolved 20 tasks (DEFAULT_MIN_EXAMPLES): ten shipping delays, ten billing errors, the first
    resolution sent twice (a retry); before the 20th, a task still got no suggestion."""
    worker = start_harness(RULES, slack_app_token=fake_slack.app_token)
    tasks = [(answer(worker, f"train-{n}", comment), cause) for n, (comment, cause) in enumerate(TRAINING)]
    assert len(tasks) == DEFAULT_MIN_EXAMPLES
    for task_id, _ in tasks:
        assert opened(worker, task_id)["suggested_root_cause"] is None  # nothing resolved yet
    for n, (task_id, cause) in enumerate(tasks[:-1]):
        resolve(worker, task_id, cause, f"zendesk-{n}")
    resolve(worker, tasks[0][0], "shipping-delay", "zendesk-0")  # delivered again: applied once, counted once
    applied(worker)
    early = answer(worker, "early", PROBE)
    assert opened(worker, early)["suggested_root_cause"] is None, "19 resolved tasks: not enough yet"
    early_alert = alert_of(fake_slack, early)
    assert likely(early_alert, early) is None and "initial_option" not in dialog(fake_slack, worker, early_alert, early)
    resolve(worker, tasks[-1][0], tasks[-1][1], "zendesk-last")
    applied(worker)
    return worker


def test_a_new_task_gets_the_cause_resolved_tasks_with_its_words_had_on_its_card_and_in_its_dialog(
    trained: Harness, fake_slack: FakeSlack
) -> None:
    model = trained.worker.keeper.causes
    assert model.counts.tasks == {"shipping-delay": 10, "billing-error": 10}, "the retried resolution counted once"
    task_id = answer(trained, "probe", PROBE)
    suggested = opened(trained, task_id)["suggested_root_cause"]
    assert suggested["root_cause"] == "shipping-delay" and 0.5 < suggested["confidence"] <= 1
    assert set(suggested["terms"][:2]) == {"late", "parcel"} and set(suggested["terms"]) <= {"late", "parcel", "arrived", "again"}

    billing = answer(trained, "probe-billing", "They charged me twice, the invoice is wrong")
    assert opened(trained, billing)["suggested_root_cause"]["root_cause"] == "billing-error"

    message = alert_of(fake_slack, task_id)
    percent = int(suggested["confidence"] * 100 + 0.5)
    assert likely(message, task_id) == f"Likely: Shipping delay ({percent} %): {', '.join(suggested['terms'])}"
    select = dialog(fake_slack, trained, message, task_id)
    assert select["initial_option"] == {"text": {"type": "plain_text", "text": "shipping-delay"}, "value": "shipping-delay"}
    assert select["initial_option"] in select["options"]


def test_the_customer_words_on_the_card_are_escaped(trained: Harness, fake_slack: FakeSlack) -> None:
    task_id = answer(trained, "hostile", "<!channel> parcel late <@U0123> *bold*")
    suggested = opened(trained, task_id)["suggested_root_cause"]
    assert suggested["root_cause"] == "shipping-delay"
    text = likely(alert_of(fake_slack, task_id), task_id)
    assert text is not None and "<!channel>" not in text and "<@U0123>" not in text


def test_a_second_replica_and_a_keeper_that_took_over_suggest_the_same(trained: Harness, fake_slack: FakeSlack, tmp_path: Path) -> None:
    task_id = answer(trained, "probe", PROBE)
    first = opened(trained, task_id)["suggested_root_cause"]
    state = list(trained.producer.records["state"])

    # A replica that reads the state topic (it applies no action; it reads what the keeper wrote).
    consumer = FakeConsumer(partitions=1)
    for key, value in state:
        consumer.append("state", key, value)
    view = StateView("state", "fb", consumer, FakeProducer({}))
    replica = CauseModel(view, trained.settings.task_policy)
    Cases(view, trained.settings.task_policy)
    view.poll()
    assert replica.counts == trained.worker.keeper.causes.counts
    asked = next(a for a in trained.records("actions") if a["action"] == "open" and a["task_id"] == task_id)
    assert "parcel" in asked["words"] and "my" not in asked["words"]  # stop words left out
    suggestion = replica.suggest(asked["stems"], asked["words"], asked["task"]["themes"])  # as the keeper weighs them
    assert suggestion is not None and suggestion.model_dump() == first

    # The keeper moves (a restart, a rebalance): the new one starts from the state topic alone.
    trained.finish()
    (tmp_path / "rules.yaml").write_text(RULES)
    successor = Harness(slack=fake_slack, live=True, rules_path=tmp_path / "rules.yaml", slack_app_token=fake_slack.app_token)
    for key, value in state:
        successor.producer.routes["state"].append("state", key, value)
    successor.start()
    try:
        again = answer(successor, "probe-again", PROBE)
        assert opened(successor, again)["suggested_root_cause"] == first
        assert successor.worker.keeper.causes.counts == replica.counts
    finally:
        successor.finish()


def test_without_themes_the_worker_learns_from_the_comments_too(start_harness: Callable[..., Harness]) -> None:
    """Rules without `themes:`: the comment is stemmed in the event's language (words as written without one), and
    ROOT_CAUSE_SUGGESTION_MIN_EXAMPLES sets how many resolved tasks come first."""
    worker = start_harness(PLAIN_RULES, root_cause_suggestion_min_examples=2)
    first = answer(worker, "one", "The parcel arrived late")
    second = answer(worker, "two", "We were charged twice")
    for task_id in (first, second):
        opened(worker, task_id)
    resolve(worker, first, "shipping-delay", "a-1")
    resolve(worker, second, "billing-error", "a-2")
    applied(worker)
    probe = answer(worker, "three", "Late parcel")
    suggested = opened(worker, probe)["suggested_root_cause"]
    assert suggested["root_cause"] == "shipping-delay" and set(suggested["terms"]) == {"late", "parcel"}
    assert opened(worker, probe)["themes"] == []
