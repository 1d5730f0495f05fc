"""The task lifecycle on the broker: actions from another system and from the CLI, SLA escalations, owner pools."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
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
    followup: {owner: cx-oncall, due_in: 1h, acknowledge_within: %(ack)s, escalate_to: {channel: "#cx-leads", owner: S0LEADS}}
"""
CONFIG = """
owners:
  cx-oncall: {members: [U01AAA, U02BBB, U03CCC], strategy: round_robin}
root_causes: [shipping-delay, billing-error, product-defect, other]
"""


@pytest.fixture
def setup(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    def write(ack: str = "1h") -> tuple[Path, Path]:
        rules, config = tmp_path / "rules.yaml", tmp_path / "worker.yaml"
        rules.write_text(RULES % {"ack": ack})
        config.write_text(CONFIG)
        return rules, config

    return write


def records(bootstrap: str, topic: str, expect: int = 0, settle: float = 0.0, timeout: float = 30.0) -> list[dict[str, Any]]:
    return read_topic(bootstrap, topic, expect=expect, timeout=timeout, settle=settle)


def at_least(found: list[dict[str, Any]], count: int) -> list[dict[str, Any]] | None:
    return found if len(found) >= count else None


def of_type(found: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in found if r.get("type") == kind]


def send_actions(bootstrap: str, topics: dict[str, str], *actions: dict[str, Any]) -> None:
    produce(bootstrap, topics["TASK_ACTIONS_TOPIC"], [(a.get("task_id", "x").encode(), json.dumps(a).encode()) for a in actions])


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "task", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def open_tasks(bootstrap: str, topics: dict[str, str], count: int, prefix: str) -> list[str]:
    events = [
        (
            f"c-{prefix}-{n}".encode(),
            event_bytes(event_id=f"{prefix}-{n}", score=n % 6, customer={"id": f"c-{prefix}-{n}", "name": f"Customer {n}"}),
        )
        for n in range(count)
    ]
    produce(bootstrap, topics["FEEDBACK_TOPIC"], events)
    return [task_id_for(f"{prefix}-{n}") for n in range(count)]


def test_every_transition_through_the_actions_topic_and_the_cli_allowed_or_refused_with_its_reason(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    worker_env: dict[str, str],
    setup: Callable[..., tuple[Path, Path]],
) -> None:
    rules, config = setup()
    start_worker("worker", args=("--config", str(config)), RULES_PATH=str(rules))
    api = {"source": "api", "id": "zendesk", "name": "Zendesk"}
    t = open_tasks(kafka_bootstrap, topics, 6, "life")
    wait_for(
        lambda: len(of_type(records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 6, timeout=2), "followup.opened")) == 6,
        60,
        "six tasks opened",
    )

    # Through the topic, as a helpdesk would: allowed ones, refused ones, a malformed one, a duplicate.
    send_actions(
        kafka_bootstrap,
        topics,
        {"action": "acknowledge", "task_id": t[0], "actor": api, "action_id": "zd-1"},
        {"action": "acknowledge", "task_id": t[0], "actor": api, "action_id": "zd-1"},  # retried: applied once
        {"action": "acknowledge", "task_id": t[0], "actor": api},  # someone else: refused
        {"action": "assign", "task_id": t[1], "actor": api, "assignee": "U09ZZZ"},
        {"action": "step", "task_id": t[1], "actor": api, "step": "hear", "note": "called"},
        {"action": "resolve", "task_id": t[2], "actor": api, "resolution": "refunded"},  # no root cause
        {"action": "resolve", "task_id": t[2], "actor": api, "root_cause": "weather", "resolution": "x"},
        {
            "action": "resolve",
            "task_id": t[2],
            "actor": api,
            "root_cause": "billing-error",
            "resolution": "refunded",
            "customer_contacted": True,
        },
        {"action": "assign", "task_id": t[2], "actor": api, "assignee": "U09ZZZ"},  # resolved: refused
        {"action": "reopen", "task_id": t[3], "actor": api, "reason": "x"},  # open: refused
        {"action": "acknowledge", "task_id": "task-nope", "actor": api},
        {"action": "acknowledge", "task_id": t[4], "actor": {"source": "martian"}},  # malformed
        {"action": "resolve", "task_id": t[2], "actor": api, "root_cuase": "other", "resolution": "x"},
    )  # misspelt field
    dlq = wait_for(lambda: at_least(records(kafka_bootstrap, topics["DLQ_TOPIC"], 8, timeout=2), 8), 60, "eight rejected actions")
    assert {d["type"] for d in dlq} == {"action.rejected"}
    assert sorted(d["error"] for d in dlq) == sorted(
        [
            f"cannot acknowledge task {t[0]}: it is acknowledged by Zendesk; only an open task can be acknowledged",
            f"cannot resolve task {t[2]} (open): a root cause is required (one of: shipping-delay, billing-error, product-defect, other)",
            f"cannot resolve task {t[2]} (open): root cause 'weather' is not in the taxonomy (one of: shipping-delay, billing-error, "
            "product-defect, other)",
            f"cannot assign task {t[2]}: it is resolved (reopen it first)",
            f"cannot reopen task {t[3]}: it is open; only a resolved or closed task can be reopened",
            "unknown task 'task-nope' (see `feedback-worker task list`)",
            "acknowledge.actor.source: Input should be 'slack', 'cli', 'api' or 'worker'",  # malformed: the field is named
            "resolve.root_cuase: Extra inputs are not permitted",  # a misspelt field is not silently ignored
        ]
    )
    assert all(d["source"]["topic"] == topics["TASK_ACTIONS_TOPIC"] and d["original"] for d in dlq)

    # Through the CLI, as a teammate would, against the same running worker.
    env = worker_env | {"RULES_PATH": str(rules)}
    taken = cli(env, "--config", str(config), "ack", t[3], "--by", "Bob")
    assert taken.returncode == 0, taken.stderr
    assert "acknowledge: done, by Bob" in taken.stderr and f"{t[3]}  acknowledged" in taken.stdout
    again = cli(env, "--config", str(config), "ack", t[3], "--by", "Carol")
    assert (again.returncode, again.stderr.strip()) == (
        1,
        f"error: cannot acknowledge task {t[3]}: it is acknowledged by Bob; only an open task can be acknowledged",
    )
    wrong = cli(env, "--config", str(config), "resolve", t[3], "--root-cause", "gremlins", "--resolution", "x")
    assert wrong.returncode == 1 and "root cause 'gremlins' is not in the taxonomy" in wrong.stderr
    assert cli(env, "--config", str(config), "resolve", t[3], "--resolution", "x").returncode == 2  # usage: --root-cause is required
    for args in (
        ("step", t[3], "apologize"),
        ("resolve", t[3], "--root-cause", "shipping-delay", "--resolution", "sent it again", "--contacted"),
        ("reopen", t[3], "--reason", "still waiting"),
    ):
        done = cli(env, "--config", str(config), *args, "--by", "Bob")
        assert done.returncode == 0, done.stderr
    listing = cli(env, "--config", str(config), "list", "--status", "open")
    assert listing.returncode == 0 and t[3] in listing.stdout and t[0] not in listing.stdout
    shown = cli(env, "--config", str(config), "show", t[3])
    history = [line.split()[2] for line in shown.stdout.splitlines() if line.startswith("  20")]
    assert history == ["followup.opened", "followup.acknowledged", "followup.step_done", "followup.resolved", "followup.reopened"], (
        shown.stdout
    )

    # The audit log: each allowed action once, in order, with its actor.
    found = records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 6 + 9, settle=2)
    per_task = {task: [r["type"] for r in found if r["task_id"] == task] for task in t}
    assert per_task[t[0]] == ["followup.opened", "followup.acknowledged"]  # the retry applied once
    assert per_task[t[1]] == ["followup.opened", "followup.assigned", "followup.step_done"]
    assert per_task[t[2]] == ["followup.opened", "followup.resolved"]
    assert [r["actor"]["name"] for r in found if r["task_id"] == t[3]][1:] == ["Bob"] * 4


def test_sla_escalations_fire_once_per_task_across_two_workers_and_a_kill_9(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    setup: Callable[..., tuple[Path, Path]],
) -> None:
    rules, config = setup(ack="3s")
    run = {"args": ("--config", str(config)), "RULES_PATH": str(rules)}
    first, second = start_worker("first", **run), start_worker("second", **run)
    first.wait_assigned()
    second.wait_assigned()
    t = open_tasks(kafka_bootstrap, topics, 12, "sla")
    wait_for(
        lambda: len(of_type(records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 12, timeout=2), "followup.opened")) == 12,
        60,
        "twelve tasks opened",
    )
    api = {"source": "api", "id": "crm"}
    sent_at = datetime.now(UTC)
    send_actions(
        kafka_bootstrap,
        topics,
        *[{"action": "acknowledge", "task_id": task, "actor": api} for task in t[:3]],
        *[{"action": "resolve", "task_id": task, "actor": api, "root_cause": "other", "resolution": "sorted"} for task in t[3:5]],
    )
    keeper = first if "keeping the tasks" in first.output() else second
    keeper.kill9()  # while the timers fall due
    start_worker("restarted", **run)
    due = set(t[5:])
    wait_for(
        lambda: (
            {r["task_id"] for r in of_type(records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 12, timeout=2), "followup.escalated")} >= due
        ),
        90,
        "every unacknowledged task escalated",
    )
    log = records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 12 + 5 + 7, settle=5)
    escalated = of_type(log, "followup.escalated")
    # Sent before its deadline, an acknowledgement or resolution must stop the escalation, though the keeper is killed
    # and the next one applies it after the deadline. One sent after it (a loaded machine) rightly escalates first.
    deadline = {r["task_id"]: datetime.fromisoformat(r["sla"]["acknowledge_by"]) for r in of_type(log, "followup.opened")}
    acted = {r["task_id"] for r in of_type(log, "followup.acknowledged") + of_type(log, "followup.resolved")}
    assert acted == set(t[:5])
    in_time = {task for task in acted if sent_at <= deadline[task]}
    assert in_time, f"the actions were sent {sent_at - min(deadline.values())} after the first deadline: nothing left to check"
    assert {r["task_id"] for r in escalated} == due | (set(t[:5]) - in_time), "no task acknowledged or resolved in time escalates"
    due |= set(t[:5]) - in_time
    assert Counter((r["task_id"], r["reason"]) for r in {r["id"]: r for r in escalated}.values()) == Counter(
        (task, "not_acknowledged") for task in due
    )
    assert all(r["escalated_to"] == {"owner": "S0LEADS", "channel": "#cx-leads"} for r in escalated)

    # In Slack, once each: a reply in the alert's thread mentioning the assignee, and a line in #cx-leads.
    def listed() -> Counter[str]:
        return Counter(task for m in fake_slack.in_channel("#cx-leads") for task in m["metadata"]["event_payload"]["task_ids"])

    wait_for(lambda: set(listed()) == due, 60, "every escalation in #cx-leads")
    alerts = {m["metadata"]["event_payload"]["task_id"]: m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_alert"}
    replies = [m for m in fake_slack.messages if m["metadata"]["event_type"] == "feedback_escalation"]
    assert sorted(m["metadata"]["event_payload"]["task_id"] for m in replies) == sorted(due)
    for reply in replies:
        alert = alerts[reply["metadata"]["event_payload"]["task_id"]]
        assert (
            reply["thread_ts"] == alert["ts"]
            and "<@U0" in reply["blocks"][0]["text"]["text"]
            and "<!subteam^S0LEADS>" in str(reply["blocks"])
        )
    assert listed() == Counter(due)


def test_an_owner_pool_shares_tasks_round_robin_across_two_replicas(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    setup: Callable[..., tuple[Path, Path]],
) -> None:
    rules, config = setup()
    run = {"args": ("--config", str(config)), "RULES_PATH": str(rules)}
    for name in ("one", "two"):
        start_worker(name, **run).wait_assigned()
    open_tasks(kafka_bootstrap, topics, 9, "pool")
    opened = wait_for(
        lambda: at_least(of_type(records(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], 9, timeout=2), "followup.opened"), 9), 60, "nine tasks"
    )
    assert Counter(r["assignee"] for r in opened) == {"U01AAA": 3, "U02BBB": 3, "U03CCC": 3}
    wait_for(lambda: len(fake_slack.messages) >= 9, 60, "nine alerts")
    for record in opened:  # each alert mentions the member its task went to
        alert = next(m for m in fake_slack.messages if m["metadata"]["event_payload"]["task_id"] == record["task_id"])
        assert f"<@{record['assignee']}>" in json.dumps(alert["blocks"])
