"""Working a task from the alert, end to end: Socket Mode clicks and the dialog through the real slack-sdk, on the broker.

The fake Slack pushes envelopes the way Slack does (block_actions, view_submission) over a
local WebSocket; the workers answer through slack-sdk's SocketModeClient and WebClient.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, WorkerProcess, event_bytes, produce, read_topic, wait_for
from tests.fake_slack import FakeSlack
from worker.tasks import task_id_for

RULES = """
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    alert: {channel: "#cx-alerts"}
    followup: {owner: cx-team, due_in: 1h, acknowledge_within: %(ack)s}
"""


@pytest.fixture
def interactive(fake_slack: FakeSlack, start_worker: Callable[..., WorkerProcess], tmp_path: Path) -> Callable[..., list[WorkerProcess]]:
    fake_slack.add_user("U02DEF", "Dana Ellis")
    fake_slack.add_user("U03GHI", "Gil Hart")

    def start(count: int = 2, ack: str = "1h", **env: str) -> list[WorkerProcess]:
        rules = tmp_path / "rules.yaml"
        rules.write_text(RULES % {"ack": ack})
        workers = [start_worker(f"w{n}", RULES_PATH=str(rules), SLACK_APP_TOKEN=fake_slack.app_token, **env) for n in range(count)]
        for worker in workers:
            worker.wait_assigned()
        wait_for(lambda: fake_slack.connections >= count, 30, "every replica's Socket Mode connection")
        return workers

    return start


def alert_for(slack: FakeSlack, event_id: str) -> dict[str, Any]:
    return wait_for(
        lambda: next(
            (
                m
                for m in list(slack.messages)
                if m["metadata"]["event_type"] == "feedback_alert" and m["metadata"]["event_payload"]["event_id"] == event_id
            ),
            None,
        ),
        60,
        f"the alert for {event_id}",
    )


def records(bootstrap: str, topic: str, task_id: str, kind: str, count: int = 1) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        matching = [r for r in read_topic(bootstrap, topic, expect=0, timeout=1.5) if r["task_id"] == task_id and r["type"] == kind]
        return matching if len(matching) >= count else None

    return wait_for(found, 30, f"{count} {kind} of {task_id}")


def click(slack: FakeSlack, alert: dict[str, Any], action_id: str, user: str = "U02DEF", **extra: Any) -> Any:
    task_id = alert["metadata"]["event_payload"]["task_id"]
    part = {"followup.steps": "steps"}.get(action_id, "actions")
    selected_user = extra.pop("selected_user", "U03GHI")
    payload = slack.block_actions(
        "#cx-alerts",
        alert["ts"],
        action_id,
        user_id=user,
        block_id=f"followup.card:{task_id}:{part}",
        value=None if action_id in ("followup.steps", "followup.assign") else task_id,
        **extra,
    )
    if action_id == "followup.assign":
        payload["actions"][0] |= {"type": "users_select", "selected_user": selected_user}
    ack = slack.wait_ack(slack.push_interactive(payload))
    assert ack.elapsed_s is not None and ack.elapsed_s < 3, "acknowledged within Slack's 3 seconds"
    return ack


def card_status(slack: FakeSlack, alert: dict[str, Any]) -> str:
    """The card's status line as the latest chat.update left it."""
    updates = [u for u in list(slack.updates) if u["ts"] == alert["ts"]]
    if not updates:
        return ""
    return next((b["text"]["text"] for b in updates[-1]["blocks"] if str(b.get("block_id", "")).endswith(":status")), "")


def card_actions(slack: FakeSlack, alert: dict[str, Any]) -> set[str]:
    updates = [u for u in list(slack.updates) if u["ts"] == alert["ts"]]
    blocks = updates[-1]["blocks"] if updates else alert["blocks"]
    return {e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]}


def thread(slack: FakeSlack, alert: dict[str, Any]) -> list[str]:
    return [m["text"] for m in list(slack.messages) if m.get("thread_ts") == alert["ts"]]


def test_acknowledge_steps_and_resolve_from_the_alert_with_two_workers(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    interactive: Callable[..., list[WorkerProcess]],
) -> None:
    interactive(2)
    produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(b"c-1", event_bytes(event_id="ia-1", score=2, comment="<!channel> broken"))])
    alert = alert_for(fake_slack, "ia-1")
    task = task_id_for("ia-1")
    assert card_actions(fake_slack, alert) == {"followup.acknowledge", "followup.resolve", "followup.assign", "followup.steps"}

    assert click(fake_slack, alert, "followup.acknowledge").payload is None
    [acknowledged] = records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], task, "followup.acknowledged")
    assert acknowledged["actor"] == {"source": "slack", "id": "U02DEF", "name": "dana.ellis"}
    wait_for(
        lambda: "*Acknowledged*" in card_status(fake_slack, alert) and "taken by <@U02DEF>" in card_status(fake_slack, alert),
        30,
        "the card showing who took it",
    )
    wait_for(lambda: "<@U02DEF> acknowledged" in thread(fake_slack, alert), 30, "the change in the alert's thread")
    assert "followup.acknowledge" not in card_actions(fake_slack, alert)

    click(fake_slack, alert, "followup.steps", selected_options=["hear", "empathize"], action_type="checkboxes")
    steps = records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], task, "followup.step_done", count=2)
    assert sorted((s["step"], s["done"]) for s in steps) == [("empathize", True), ("hear", True)]

    click(fake_slack, alert, "followup.resolve")
    view = wait_for(lambda: next((v for v in list(fake_slack.views) if v["view"]["private_metadata"] == task), None), 10, "the dialog")
    assert view["view"]["callback_id"] == "followup.resolve"
    assert {b.get("block_id") for b in view["view"]["blocks"]} >= {"root_cause", "resolution", "customer_contacted"}
    incomplete = fake_slack.view_submission(view["view_id"], {"resolution": {"value": "Replaced the order"}}, user_id="U02DEF")
    refused = fake_slack.wait_ack(fake_slack.push_interactive(incomplete))
    assert refused.payload == {"response_action": "errors", "errors": {"root_cause": "Choose the root cause."}}  # the dialog stays open
    complete = fake_slack.view_submission(
        view["view_id"],
        {
            "root_cause": {"value": {"type": "static_select", "selected_option": {"value": "shipping-delay"}}},
            "resolution": {"value": "Replaced the order"},
            "customer_contacted": {"value": ["yes"]},
        },
        user_id="U02DEF",
    )
    assert fake_slack.wait_ack(fake_slack.push_interactive(complete)).payload is None  # closes the dialog
    [resolved] = records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], task, "followup.resolved")
    assert (resolved["root_cause"], resolved["resolution"], resolved["customer_contacted"]) == (
        "shipping-delay",
        "Replaced the order",
        True,
    )
    wait_for(lambda: card_actions(fake_slack, alert) == {"followup.reopen"}, 30, "the final card: a Reopen button only")
    assert "root cause *shipping-delay*" in card_status(fake_slack, alert) and "Replaced the order" in card_status(fake_slack, alert)
    wait_for(lambda: any("resolved it: shipping-delay — Replaced the order" in t for t in thread(fake_slack, alert)), 30, "its line")
    assert "<!channel>" not in json.dumps(list(fake_slack.updates))  # customer text stays untrusted on the card


def test_refusals_double_clicks_other_workspaces_and_people_not_allowed(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    interactive: Callable[..., list[WorkerProcess]],
) -> None:
    interactive(2, TASK_ACTORS="U02DEF,U03GHI")
    produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(b"c-2", event_bytes(event_id="ia-2", score=1))])
    alert, task = alert_for(fake_slack, "ia-2"), task_id_for("ia-2")
    for _ in range(2):  # a double click: applied once, the second told why not
        click(fake_slack, alert, "followup.acknowledge")
    records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], task, "followup.acknowledged")
    wait_for(lambda: any("it is acknowledged by" in e["text"] for e in list(fake_slack.ephemerals)), 30, "the second click refused")

    outsider = click(fake_slack, alert, "followup.assign", user="U09XYZ", selected_user="U09XYZ")  # not in TASK_ACTORS
    assert outsider.payload is None
    wait_for(
        lambda: any(e["text"] == "You can't change this task." and e["user"] == "U09XYZ" for e in list(fake_slack.ephemerals)),
        30,
        "the outsider told",
    )
    foreign = fake_slack.block_actions("#cx-alerts", alert["ts"], "followup.reopen", value=task, user_id="U02DEF")
    foreign["team"] = {"id": "T9999", "domain": "elsewhere"}
    fake_slack.wait_ack(fake_slack.push_interactive(foreign))
    click(fake_slack, alert, "followup.steps", selected_options=["hear"], action_type="checkboxes", user="U03GHI")
    records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], task, "followup.step_done")
    found = [r for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=3, timeout=5, settle=3) if r["task_id"] == task]
    assert [r["type"] for r in found] == ["followup.opened", "followup.acknowledged", "followup.step_done"]  # nothing else got through


def test_an_escalation_and_a_cli_resolve_update_the_card_and_a_dropped_socket_reconnects(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    interactive: Callable[..., list[WorkerProcess]],
    worker_env: dict[str, str],
    tmp_path: Path,
) -> None:
    interactive(1, ack="3s")
    produce(
        kafka_bootstrap,
        topics["FEEDBACK_TOPIC"],
        [(b"c-3", event_bytes(event_id="ia-3", score=3)), (b"c-4", event_bytes(event_id="ia-4", score=4))],
    )
    late, other = alert_for(fake_slack, "ia-3"), alert_for(fake_slack, "ia-4")
    wait_for(lambda: "escalated (not acknowledged)" in card_status(fake_slack, late), 30, "the escalation on the card")

    env = worker_env | {"RULES_PATH": str(tmp_path / "rules.yaml")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker",
            "task",
            "resolve",
            task_id_for("ia-3"),
            "--root-cause",
            "other",
            "--resolution",
            "Called back",
            "--by",
            "Sam",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    wait_for(lambda: "*Resolved* by Sam" in card_status(fake_slack, late), 30, "the CLI's resolve on the card")

    assert fake_slack.drop_connections() >= 1
    wait_for(lambda: fake_slack.connections >= 1, 30, "the worker reconnecting")
    click(fake_slack, other, "followup.acknowledge")
    acknowledged = records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], task_id_for("ia-4"), "followup.acknowledged")
    found = [
        r
        for r in read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=0, timeout=3, settle=2)
        if r["task_id"] == task_id_for("ia-4") and r["type"] == "followup.acknowledged"
    ]
    assert len(acknowledged) == len(found) == 1  # not lost, not applied twice
