"""The command line as an operator meets it: the demo, refusals to start, settings."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from worker.broker import make_consumer, make_state_consumer
from worker.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], cwd=ROOT, env=base | (env or {}), capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.broker  # the demo starts its own embedded broker
def test_demo_ends_with_a_summary_and_exit_0():
    result = _run("demo", "--events", "160")  # enough resolved tasks (20) for its Diagnose step to suggest root causes
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "[alert → #" in out  # alerts are shown as they happen
    assert "Summary" in out
    assert "events produced            160   (156 valid, 4 malformed)" in out
    assert "dead-letter queue            4   (4 invalid events, 0 undeliverable alerts)" in out
    assert "nps-detractor" in out
    # The loop closed for the tasks the teammate resolved: each customer answered the follow-up survey.
    answers = re.search(r"then (\d+) follow-up answers", out)
    assert answers and int(answers[1]) >= 2, out
    assert "closed: recovered" in out and "reopened: still unhappy" in out
    # The last-24h metrics, read back from the snapshot topic, cover every valid answer, follow-ups included.
    assert "Metrics, last 24h" in out
    overall = re.search(r"^  all customers\s+(\d+)\s+([+-]\d+) ±(\d+)\s+(\d+)%", out, re.M)
    wave = re.search(r"sent (\d+) answers with the usual comments .*, then (\d+) unhappy comments about a zipper", out)
    assert wave, out
    # ... and the Diagnose step's two new answers, and the rising complaint's history and wave
    assert overall and int(overall[1]) == 156 + int(answers[1]) + 2 + int(wave[1]) + int(wave[2]), out
    loop = {name: re.search(rf"^  {name}\s+(\S+)", out, re.M) for name in ("resolved", "recovered", "recovery rate")}
    assert all(loop.values()), out
    backlog = re.search(r"resolved (\d+) more tasks, each with the root cause its comment shows", out)
    assert backlog and int(loop["resolved"][1]) == int(answers[1]) + int(backlog[1]), out  # type: ignore[index]
    recovered = int(loop["recovered"][1])  # type: ignore[index]
    assert loop["recovery rate"][1] == f"{recovered / int(answers[1]) * 100:.0f}%", out  # type: ignore[index]
    # Diagnose: the resolved backlog taught the worker; new tasks' cards suggest the cause their words point to.
    assert re.search(r"its card: Likely: Shipping delay \(\d+ %\): .*hilines", out), out
    assert re.search(r"its card: Likely: Billing error \(\d+ %\): .*rechnung", out), out
    # A complaint no theme covers, rising: posted once, with the customers' words and a theme to paste.
    assert out.count("Rising complaint: zipper") == 1 and "no theme covers it" in out and "id: zipper" in out, out
    # What each theme cost, from the same snapshot, largest impact first.
    themes = out[out.index("Themes, last 24h") :].split("═")[0].splitlines()
    assert themes[2].split()[:2] == ["theme", "answers"] and any(line.startswith("  Delivery › Shipping delay ") for line in themes), out


def test_run_refuses_invalid_rules_with_file_and_line(tmp_path: Path):
    rules = tmp_path / "bad.yaml"
    rules.write_text("rules:\n  - id: x\n    when:\n      score: {lesser: 3}\n")
    # Nothing listens on this port: the worker must refuse before it ever tries Kafka.
    result = _run("run", env={"RULES_PATH": str(rules), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}, timeout=30)
    assert result.returncode == 2
    assert f"{rules}:4: rule 'x': when.score: unknown operator 'lesser'" in result.stderr


def test_run_refuses_a_rule_without_channel_when_slack_has_no_default(tmp_path: Path):
    rules = tmp_path / "r.yaml"
    rules.write_text("rules:\n  - id: quiet\n    when: {survey: nps}\n")
    result = _run(
        "run", env={"RULES_PATH": str(rules), "SLACK_BOT_TOKEN": "xoxb-shh-123456", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9"}, timeout=30
    )
    assert result.returncode == 2
    assert "rule 'quiet' names no alert channel, and neither SLACK_DEFAULT_CHANNEL nor a default route is set" in result.stderr
    assert "xoxb-shh-123456" not in result.stderr + result.stdout


def test_a_bad_setting_names_the_variable_and_exits_2():
    result = _run("run", env={"KAFKA_AUTO_OFFSET_RESET": "sometimes"}, timeout=30)
    assert result.returncode == 2
    assert "KAFKA_AUTO_OFFSET_RESET" in result.stderr and "sometimes" in result.stderr


def test_environment_wins_over_the_config_file(tmp_path: Path):
    config = tmp_path / "worker.yaml"
    config.write_text("FEEDBACK_TOPIC: from-file\ndlq_topic: dlq-from-file\nslack_default_channel: '#file'\n")
    settings = load_settings(config, environ={"FEEDBACK_TOPIC": "from-env"})
    assert settings.feedback_topic == "from-env"
    assert settings.dlq_topic == "dlq-from-file"
    assert settings.slack_default_channel == "#file"


def test_an_unknown_key_in_the_config_file_is_named_with_its_line(tmp_path: Path):
    config = tmp_path / "worker.yaml"
    config.write_text("feedback_topic: x\nfeedbak_topic: y\n")
    with pytest.raises(ConfigError, match=r"worker.yaml:2: unknown setting 'feedbak_topic'"):
        load_settings(config, environ={})


def test_defaults_match_the_documented_contract():
    settings = load_settings(None, environ={})
    assert settings.kafka_bootstrap_servers == "localhost:9092"
    assert (settings.feedback_topic, settings.followup_topic, settings.metrics_topic, settings.dlq_topic) == (
        "feedback.events",
        "feedback.followups",
        "feedback.metrics",
        "feedback.dlq",
    )
    assert settings.consumer_group == "feedback-worker"
    assert settings.slack_bot_token is None and settings.slack_api_url == "https://slack.com/api/"
    assert settings.kafka_session_timeout_ms is None and settings.kafka_heartbeat_interval_ms is None
    assert settings.rules_path.name == "rules" and settings.templates_path.name == "templates"


def test_fetch_wait_defaults_to_100_ms_and_is_read_from_the_environment():
    assert load_settings(None, environ={}).kafka_fetch_max_wait_ms == 100
    assert load_settings(None, environ={"KAFKA_FETCH_MAX_WAIT_MS": "20"}).kafka_fetch_max_wait_ms == 20
    with pytest.raises(ConfigError, match="KAFKA_FETCH_MAX_WAIT_MS: Input should be greater than or equal to 1"):
        load_settings(None, environ={"KAFKA_FETCH_MAX_WAIT_MS": "0"})  # 0 would fetch in a busy loop when idle


def test_fetch_wait_reaches_the_feedback_and_the_state_consumer(kafka_bootstrap: str):
    settings = load_settings(None, environ={"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_FETCH_MAX_WAIT_MS": "25"})
    for consumer in (make_consumer(settings), make_state_consumer(settings)):
        try:
            assert consumer.config["fetch_max_wait_ms"] == 25
        finally:
            consumer.close()
