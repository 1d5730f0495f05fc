"""`feedback-worker doctor`: a healthy stack exits 0; each broken one exits 1 naming the problem, within its timeouts.

The stack is the session's embedded broker, this test's topics (the worker's own created as it
creates them) and the fake Slack, which answers as Slack does (x-oauth-scopes, conversations.info,
is_member, users.info). Doctor runs in-process through the CLI's main(); one test runs the real
command. What the configuration names in Slack (`named_in`) is tested on its own, without a network.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition

from tests.conftest import ROOT, produce, wait_for
from tests.fake_slack import FakeSlack, Scripted
from worker.broker import TopicFacts, ensure_topics, free_port, judge, verify_topics
from worker.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from worker.cli.doctor import BOT_SCOPES, FAIL, OK, SKIP, Row, as_json, named_in, required_scopes, table
from worker.cli.doctor import kafka as doctor_kafka
from worker.config import load_settings
from worker.rules import load_rules

RULES = """\
rules:
  - id: detractor
    description: NPS detractor
    when: {survey: nps, score: {lte: 6}}
    severity: high
    followup:
      owner: U0ADA00001
      acknowledge_within: 1h
      escalate_to: {owner: S0LEADS001, channel: "#cx-leads"}
    alert: {channel: "#cx-alerts"}
  - id: unhappy-csat
    description: Unhappy with an interaction
    when: {survey: csat, score: {lte: 2}}
    severity: medium
    followup: {owner: cx-oncall}
    alert: {channel: "#cx-{{ customer.segment }}"}
  - id: effort
    description: High effort
    when: {survey: ces, score: {gte: 4}}
    severity: low
    followup: {owner: support-leads}
"""
CONFIG = """\
owners:
  cx-oncall: {members: [U0BOB00001]}
routes:
  - {channel: "#cx-alerts", owner: cx-team}
root_cause_digest: {channel: "#cx-leads", every: 1w}
"""
CHANNELS = {"#cx-alerts", "#cx-leads", "#cx-smb"}
TIMEOUT = 3  # --timeout for the broken cases: each must end within it (and a margin for the local checks)
MARGIN_S = 3.0


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES)
    (tmp_path / "worker.yaml").write_text(CONFIG)
    return tmp_path


@pytest.fixture
def slack(fake_slack: FakeSlack) -> FakeSlack:
    """A workspace with the channels and people the configuration names, the bot in every channel."""
    fake_slack.channels = set(CHANNELS)
    fake_slack.add_user("U0ADA00001", "Ada Lovelace")
    fake_slack.add_user("U0BOB00001", "Bob Marley")
    return fake_slack


@pytest.fixture
def stack_env(kafka_bootstrap: str, topics: dict[str, str], slack: FakeSlack, config_dir: Path) -> dict[str, str]:
    """The worker's environment on a healthy stack: its topics exist as the worker creates them (service.py)."""
    env = topics | {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "RULES_PATH": str(config_dir / "rules"),
        "TEMPLATES_PATH": str(ROOT / "templates"),
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.url,
    }
    create_worker_topics(env)
    return env


def create_worker_topics(env: dict[str, str], actions_partitions: int = 1) -> None:
    settings = load_settings(None, environ=env)
    compacted = [settings.metrics_topic, settings.state_topic]
    ensure_topics(settings, [settings.survey_request_topic], compacted=compacted)
    ensure_topics(settings, [settings.task_actions_topic], partitions=actions_partitions)
    ensure_topics(settings, [settings.state_topic], partitions=1, compacted=compacted)


Doctor = Callable[..., tuple[int, list[dict[str, str]], float]]


@pytest.fixture
def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], config_dir: Path) -> Doctor:
    """Run `feedback-worker doctor --json` in-process with `env` as the whole KAFKA_/SLACK_ environment: (exit code,
    rows, seconds taken)."""

    def run(env: dict[str, str], *args: str, timeout: int = TIMEOUT) -> tuple[int, list[dict[str, str]], float]:
        for name in list(os.environ):
            if name.startswith(("KAFKA_", "SLACK_")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        started = time.monotonic()
        code = main(["doctor", "--json", "--timeout", str(timeout), "--config", str(config_dir / "worker.yaml"), *args])
        took = time.monotonic() - started
        report = json.loads(capsys.readouterr().out)
        assert report["exit_code"] == code and report["ok"] == (code == EXIT_OK)
        return code, report["rows"], took

    return run


def row(rows: list[dict[str, str]], check: str) -> dict[str, str]:
    found = [r for r in rows if r["check"] == check]
    assert len(found) == 1, f"no single row {check!r} in {[r['check'] for r in rows]}"
    return found[0]


def failures(rows: list[dict[str, str]]) -> list[str]:
    return [f"{r['check']}: {r['detail']}" for r in rows if r["status"] == "fail"]


# -- a healthy stack -----------------------------------------------------------------------------


def test_a_healthy_stack_is_ready_every_check_answered_and_nothing_posted(
    doctor: Doctor, stack_env: dict[str, str], slack: FakeSlack, topics: dict[str, str]
) -> None:
    code, rows, _ = doctor(stack_env)
    assert code == EXIT_OK, failures(rows)
    checked = {r["check"]: r for r in rows if r["status"] == "ok"}
    for check in ("settings", "routes", "rules", "Kafka", "Slack auth.test", "bot token scopes", "Socket Mode (SLACK_APP_TOKEN)"):
        assert check in checked, check
    for setting in (
        "FEEDBACK_TOPIC",
        "STATE_TOPIC",
        "TASK_ACTIONS_TOPIC",
        "METRICS_TOPIC",
        "FOLLOWUP_TOPIC",
        "DLQ_TOPIC",
        "SURVEY_REQUEST_TOPIC",
    ):
        assert f"{setting} {topics[setting]!r}" in checked, setting
    assert row(rows, f"FEEDBACK_TOPIC {topics['FEEDBACK_TOPIC']!r}")["detail"].startswith("3 partition(s)")
    assert row(rows, f"TASK_ACTIONS_TOPIC {topics['TASK_ACTIONS_TOPIC']!r}")["detail"].startswith("1 partition(s)")
    for channel in sorted(CHANNELS - {"#cx-smb"}):  # #cx-smb is only a template's possible value
        assert row(rows, f"channel {channel}")["status"] == "ok"
    assert "root_cause_digest" in row(rows, "channel #cx-leads")["detail"] and "escalate_to" in row(rows, "channel #cx-leads")["detail"]
    assert row(rows, "user U0ADA00001")["detail"].startswith("Ada Lovelace")
    assert "owners.cx-oncall" in row(rows, "user U0BOB00001")["detail"]
    assert row(rows, "scopes vs deploy/slack/manifest.yaml")["status"] == "ok"
    # what could not be checked says why
    assert row(rows, "template '#cx-{{ customer.segment }}'")["status"] == "skipped"
    assert row(rows, "user group S0LEADS001")["status"] == "skipped"
    assert "support-leads" in row(rows, "owners by name")["detail"] and "cx-team" in row(rows, "owners by name")["detail"]
    assert "cx-oncall" not in row(rows, "owners by name")["detail"], "a pool is not a name: its members are checked"
    assert row(rows, f"consumer group {topics['CONSUMER_GROUP']!r}")["status"] == "skipped"  # no worker runs
    # no check posts, and the Socket Mode connection was closed again
    assert slack.messages == [] and slack.calls_to("chat.postMessage") == [] and slack.calls_to("chat.update") == []
    assert wait_for(lambda: slack.connections == 0, 5, "doctor's Socket Mode connection to close") is True


def test_the_group_s_members_and_its_lag_from_the_high_watermarks(
    doctor: Doctor, stack_env: dict[str, str], kafka_bootstrap: str, topics: dict[str, str]
) -> None:
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(f"k{i}".encode(), b"{}") for i in range(30)])
    member = KafkaConsumer(
        topics["FEEDBACK_TOPIC"],
        bootstrap_servers=kafka_bootstrap,
        group_id=topics["CONSUMER_GROUP"],
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        session_timeout_ms=6000,  # Tansu takes a new group's first join 20 s with the default 10 s (tests/conftest.py FAST_GROUP)
        heartbeat_interval_ms=1000,
    )
    try:
        # 60 s: under `make test`'s load a join once took over 30 s, after kafka-python lost its connection mid-join.
        wait_for(lambda: member.poll(timeout_ms=100) is not None and len(member.assignment()) == 3, 60, "the member's partitions")
        member.commit({TopicPartition(topics["FEEDBACK_TOPIC"], p): OffsetAndMetadata(1, "", -1) for p in end})
        code, rows, _ = doctor(stack_env)
    finally:
        member.close(autocommit=False)
    assert code == EXIT_OK, failures(rows)
    group = row(rows, f"consumer group {topics['CONSUMER_GROUP']!r}")
    assert group["status"] == "ok" and group["detail"].startswith("1 member(s)")
    lag = row(rows, f"lag on {topics['FEEDBACK_TOPIC']!r}")
    behind = sum(n - 1 for n in end.values())
    assert lag["detail"].startswith(f"{behind} record(s) not yet committed"), (lag, end)
    for partition, written in end.items():
        assert f"p{partition} {written - 1}" in lag["detail"]


def test_json_and_the_table_show_the_same_rows(doctor: Doctor, stack_env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    _, rows, _ = doctor(stack_env)
    assert main(["doctor", "--timeout", str(TIMEOUT), "--config", str(Path(stack_env["RULES_PATH"]).parent / "worker.yaml")]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    starts = [line for line in lines if line[:1] in (OK, FAIL, SKIP)]
    assert [line.split("  ")[0:2] for line in starts] == [[r["symbol"], r["check"]] for r in rows]
    assert lines[-1].endswith("; ready") and f"{len(rows)} checks" in lines[-1]


# -- each broken case: exit 1, naming the problem -------------------------------------------------------


def test_a_multi_partition_actions_topic_is_named_in_the_words_run_uses(
    doctor: Doctor, kafka_bootstrap: str, topics: dict[str, str], slack: FakeSlack, config_dir: Path
) -> None:
    env = topics | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "RULES_PATH": str(config_dir / "rules")}
    env |= {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.url}
    create_worker_topics(env, actions_partitions=3)
    code, rows, took = doctor(env)
    assert code == EXIT_FAILED
    broken = row(rows, f"TASK_ACTIONS_TOPIC {topics['TASK_ACTIONS_TOPIC']!r}")
    assert broken["status"] == "fail" and broken["detail"].startswith("it has 3 partitions; the worker needs exactly 1 partition")
    (problem,) = verify_topics(load_settings(None, environ=env), topics["STATE_TOPIC"], 10).problems
    assert f"{broken['check']}: {broken['detail']}. Fix: {broken['fix']}" == str(problem), "the same message as `run` logs"
    assert failures(rows) == [f"{broken['check']}: {broken['detail']}"]
    assert took < TIMEOUT + MARGIN_S


def test_a_missing_scope_is_named_with_what_needs_it(doctor: Doctor, stack_env: dict[str, str], slack: FakeSlack) -> None:
    slack.scopes.discard("channels:history")
    code, rows, _ = doctor(stack_env)
    assert code == EXIT_FAILED
    scopes = row(rows, "bot token scopes")
    assert scopes["status"] == "fail" and scopes["detail"].startswith("missing channels:history (channels:history: SLACK_HISTORY_LOOKUP")
    assert "SLACK_HISTORY_LOOKUP=false" in scopes["fix"] and "deploy/slack/manifest.yaml" in scopes["fix"]
    assert row(rows, "scopes vs deploy/slack/manifest.yaml")["status"] == "skipped"
    assert failures(rows) == [f"bot token scopes: {scopes['detail']}"]
    # without the history lookup the worker does not need it: ready, the manifest's difference still shown
    code, rows, _ = doctor(stack_env | {"SLACK_HISTORY_LOOKUP": "false"})
    assert code == EXIT_OK, failures(rows)
    assert "lacks channels:history" in row(rows, "scopes vs deploy/slack/manifest.yaml")["detail"]


def test_a_channel_the_bot_is_not_in_is_named_with_the_invite(doctor: Doctor, stack_env: dict[str, str], slack: FakeSlack) -> None:
    slack.not_member = {"#cx-leads"}
    code, rows, _ = doctor(stack_env)
    assert code == EXIT_FAILED
    leads = row(rows, "channel #cx-leads")
    assert leads["status"] == "fail" and leads["detail"].startswith("the bot is not in #cx-leads")
    assert leads["fix"] == "/invite @feedback-worker in #cx-leads"
    assert [r["check"] for r in rows if r["status"] == "fail"] == ["channel #cx-leads"]
    assert slack.messages == []


def test_a_channel_that_does_not_exist_is_named_with_who_names_it(doctor: Doctor, stack_env: dict[str, str], slack: FakeSlack) -> None:
    slack.channels = CHANNELS - {"#cx-alerts"}
    code, rows, _ = doctor(stack_env)
    assert code == EXIT_FAILED
    alerts = row(rows, "channel #cx-alerts")
    assert alerts["status"] == "fail" and alerts["detail"].startswith("no such channel")
    assert "rule detractor" in alerts["detail"] and "routes[0]" in alerts["detail"]


def test_an_unknown_user_as_an_owner_is_named(doctor: Doctor, stack_env: dict[str, str], slack: FakeSlack) -> None:
    del slack.users["U0ADA00001"]
    code, rows, _ = doctor(stack_env)
    assert code == EXIT_FAILED
    ada = row(rows, "user U0ADA00001")
    assert ada["status"] == "fail" and ada["detail"].startswith("no such user in this workspace (named by rule detractor")
    assert [r["check"] for r in rows if r["status"] == "fail"] == ["user U0ADA00001"]


def test_without_users_read_users_are_not_checked_and_it_says_why(doctor: Doctor, stack_env: dict[str, str], slack: FakeSlack) -> None:
    slack.scopes.discard("users:read")
    del slack.users["U0ADA00001"]  # unknown, but nobody can tell without the scope
    code, rows, _ = doctor(stack_env)
    assert code == EXIT_OK, failures(rows)
    assert row(rows, "user U0ADA00001")["status"] == "skipped" and "lacks users:read" in row(rows, "user U0ADA00001")["detail"]


def test_a_broker_that_is_down_is_a_failure_within_the_timeout(doctor: Doctor, slack: FakeSlack, config_dir: Path) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "RULES_PATH": str(config_dir / "rules")}
    code, rows, took = doctor(env | {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.url})
    assert code == EXIT_FAILED
    assert row(rows, "Kafka") == {
        "status": "fail",
        "symbol": FAIL,
        "check": "Kafka",
        "detail": f"no answer from {env['KAFKA_BOOTSTRAP_SERVERS']} after {TIMEOUT} s",
        "fix": row(rows, "Kafka")["fix"],
    }
    assert "KAFKA_BOOTSTRAP_SERVERS" in row(rows, "Kafka")["fix"]
    assert row(rows, "Slack auth.test")["status"] == "ok", "Slack is checked all the same"
    assert took < TIMEOUT + MARGIN_S, took


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (the kernel completes the handshake; nobody reads)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.mark.parametrize("where", ["closed port", "silent port"])
def test_slack_that_is_down_is_a_failure_within_the_timeout(
    doctor: Doctor, stack_env: dict[str, str], silent_port: int, where: str
) -> None:
    port = free_port() if where == "closed port" else silent_port
    url = f"http://127.0.0.1:{port}/api/"
    code, rows, took = doctor(stack_env | {"SLACK_API_URL": url})
    assert code == EXIT_FAILED
    auth = row(rows, "Slack auth.test")
    expected = f"no answer from {url} after {TIMEOUT} s" if where == "silent port" else f"cannot reach {url}: "
    assert auth["status"] == "fail" and auth["detail"].startswith(expected), auth
    assert row(rows, "Socket Mode (SLACK_APP_TOKEN)")["status"] == "skipped", "no second wait on the same silence"
    assert row(rows, "Kafka")["status"] == "ok"
    assert failures(rows) == [f"Slack auth.test: {auth['detail']}"]
    assert took < TIMEOUT + MARGIN_S, took


def test_a_refused_bot_token_and_a_wrong_app_token_are_named(doctor: Doctor, stack_env: dict[str, str], slack: FakeSlack) -> None:
    code, rows, _ = doctor(stack_env | {"SLACK_BOT_TOKEN": "xoxb-revoked", "SLACK_APP_TOKEN": "xapp-1-revoked"})
    assert code == EXIT_FAILED
    assert row(rows, "Slack auth.test")["detail"] == "refused: invalid_auth"
    socket_mode = row(rows, "Socket Mode (SLACK_APP_TOKEN)")
    assert socket_mode["detail"] == "apps.connections.open refused: invalid_auth" and "App-Level Tokens" in socket_mode["fix"]


def test_a_slack_outage_is_told_apart_from_a_refused_token(doctor: Doctor, slack: FakeSlack, config_dir: Path) -> None:
    slack.fail_method("auth.test", Scripted(status=503))
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "RULES_PATH": str(config_dir / "rules")}
    code, rows, _ = doctor(env | {"SLACK_BOT_TOKEN": slack.token, "SLACK_API_URL": slack.url}, timeout=1)
    assert code == EXIT_FAILED
    assert row(rows, "Slack auth.test")["detail"].startswith("Slack answered HTTP 503 (internal_error): not the configuration's fault")


def test_unparsable_settings_exit_2_with_the_setting_named(doctor: Doctor) -> None:
    code, rows, took = doctor({"SLACK_CONCURRENCY": "lots"})
    assert code == EXIT_USAGE
    assert [(r["check"], r["status"]) for r in rows] == [("settings", "fail")]
    assert "SLACK_CONCURRENCY" in rows[0]["detail"]
    assert took < 2


def test_broken_rules_are_a_failure_with_file_and_line(doctor: Doctor, config_dir: Path, slack: FakeSlack) -> None:
    (config_dir / "rules" / "rules.yaml").write_text(RULES.replace("severity: high", "severity: loud"))
    env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}", "RULES_PATH": str(config_dir / "rules")}
    code, rows, _ = doctor(env, timeout=1)
    assert code == EXIT_FAILED
    rules = row(rows, "rules")
    assert rules["status"] == "fail" and "rules.yaml:5" in rules["detail"] and "rules check" in rules["fix"]


@pytest.mark.broker
def test_the_real_command_on_a_healthy_stack(stack_env: dict[str, str], config_dir: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "doctor", "--timeout", "5", "--config", str(config_dir / "worker.yaml")],
        cwd=ROOT,
        env=base | stack_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.rstrip().endswith("; ready")
    assert f"{OK}  Slack auth.test" in result.stdout and f"{OK}  Kafka" in result.stdout
    assert result.stderr == "", "the libraries' connection logs stay off the terminal"


# -- without a network -------------------------------------------------------------------------------


def test_named_in_finds_every_channel_and_person_and_where(config_dir: Path) -> None:
    settings = load_settings(
        config_dir / "worker.yaml",
        environ={"SLACK_DEFAULT_CHANNEL": "#cx-default", "TASK_ACTORS": "U0CAROL001,S0LEADS001"},
        rules_path=config_dir / "rules",
    )
    rules = load_rules(settings.rules_path, ROOT / "templates")
    named = named_in(settings, rules)
    assert {channel: [where.split(" (")[0] for where in wheres] for channel, wheres in named.channels.items()} == {
        "#cx-alerts": ["rule detractor", "routes[0]"],
        "#cx-leads": ["rule detractor", "root_cause_digest"],
        "#cx-default": ["SLACK_DEFAULT_CHANNEL"],
    }
    assert named.channels["#cx-leads"][0].endswith("escalate_to") and "rules.yaml:2" in named.channels["#cx-alerts"][0]
    assert list(named.templated) == ["#cx-{{ customer.segment }}"]
    assert named.users == {
        "U0ADA00001": [named.channels["#cx-alerts"][0]],
        "U0BOB00001": ["owners.cx-oncall"],
        "U0CAROL001": ["TASK_ACTORS"],
    }
    assert {group: len(wheres) for group, wheres in named.groups.items()} == {"S0LEADS001": 2}  # an escalation and TASK_ACTORS
    assert list(named.names) == ["support-leads", "cx-team"], "cx-oncall is a pool: its members are the people"
    assert named_in(settings, None).channels.keys() == {"#cx-alerts", "#cx-leads", "#cx-default"}, "rules that do not load: the rest"


def test_the_scopes_a_configuration_needs() -> None:
    plain = load_settings(None, environ={})
    assert list(required_scopes(plain, named_in(plain, None))) == [
        "chat:write",
        "channels:history",
        "groups:history",
        "channels:read",
        "groups:read",
    ]
    off = load_settings(None, environ={"SLACK_HISTORY_LOOKUP": "false", "TASK_ACTORS": "S0LEADS001"})
    assert list(required_scopes(off, named_in(off, None))) == ["chat:write", "usergroups:read"]
    assert set(required_scopes(plain, named_in(plain, None))) < set(BOT_SCOPES)


def test_the_table_puts_each_fix_under_its_row_and_counts() -> None:
    rows = [Row(OK, "settings", "parsed"), Row(FAIL, "Kafka", "no answer after 3 s", "check it"), Row(SKIP, "Slack", "unset\nsecond line")]
    lines = table(rows).splitlines()
    assert lines[:5] == [
        f"{OK}  settings  parsed",
        f"{FAIL}  Kafka     no answer after 3 s",
        "             fix: check it",
        f"{SKIP}  Slack     unset",
        "             second line",
    ]
    assert lines[-1] == f"3 checks: 1 {OK}, 1 {FAIL}, 1 {SKIP}; not ready: 1 problem(s)"
    report: dict[str, Any] = as_json(rows, EXIT_FAILED)
    assert report["counts"] == {"ok": 1, "fail": 1, "skipped": 1} and report["ok"] is False
    assert report["rows"][1] == {"status": "fail", "symbol": FAIL, "check": "Kafka", "detail": "no answer after 3 s", "fix": "check it"}


def test_every_topic_problem_is_a_row_in_the_words_run_uses() -> None:
    settings = load_settings(
        None, environ={"CREATE_TOPICS": "false"}, feedback_topic="fb", state_topic="state", task_actions_topic="actions"
    )
    facts = {
        "state": TopicFacts("state", 6, {"cleanup.policy": "delete"}),
        "actions": TopicFacts("actions", 3, {"cleanup.policy": "delete"}),
        "feedback.metrics": TopicFacts("feedback.metrics", 1, {"cleanup.policy": "compact"}),
    }
    topology = judge(settings, "state", facts)
    rows = doctor_kafka.topic_rows(settings, "state", topology)
    failed = [r for r in rows if r.status == FAIL]
    assert sorted(f"{r.check}: {r.detail}. Fix: {r.fix}" for r in failed) == sorted(str(problem) for problem in topology.problems)
    assert len(failed) == 4  # state: 6 partitions and not compacted; actions: 3 partitions; fb: missing
    assert {r.check: r.status for r in rows}["METRICS_TOPIC 'feedback.metrics'"] == OK
    assert {r.check: r.detail for r in rows}["DLQ_TOPIC 'feedback.dlq'"].startswith("does not exist (CREATE_TOPICS=false)")


def test_lag_is_each_partition_s_high_watermark_less_its_committed_offset() -> None:
    lag = doctor_kafka.lag_row("fb", 4, {0: 5, 1: 7, 3: 2}, {0: 9, 1: 7, 2: 4})
    assert lag.detail == "4 record(s) not yet committed: p0 4, p1 0, p2 –, p3 – (p2: nothing committed; p3: no fetch answered)"


def test_a_step_that_never_returns_is_given_up_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_kafka, "GRACE_S", 0.0)
    never = threading.Event()
    started = time.monotonic()
    with pytest.raises(doctor_kafka.NoAnswer):
        doctor_kafka.bounded(never.wait, 0.2)
    assert 0.2 <= time.monotonic() - started < 1.5
    assert doctor_kafka.bounded(lambda: 42, 0.2) == 42
    with pytest.raises(ZeroDivisionError):
        doctor_kafka.bounded(lambda: 1 // 0, 0.2)
