"""LOG_FORMAT=json: one JSON object per line on stderr, for log pipelines, still scrubbed of secrets.

The CLI tests run the real `python -m worker run` against a bad setting or bad rules (the
worker refuses to start before connecting, so no broker is needed) and parse every line.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from worker.events import FeedbackEvent
from worker.logs import JsonFormatter, QuietRepeats, RedactSecrets, setup_logging
from worker.rules import Router, load_rules

ROOT = Path(__file__).resolve().parent.parent
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TOKEN = "xoxb-9999-8888-not-a-real-token"


def run_worker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_", "RULES_", "TEMPLATES_", "LOG_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "run", *args],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def json_lines(stderr: str) -> list[dict]:
    lines = stderr.split("\n")
    assert lines[-1] == "", "stderr must end with a newline"
    records = [json.loads(line) for line in lines[:-1]]  # every line, or this raises
    for record in records:
        assert TS.match(record["ts"]), record
        assert abs(datetime.fromisoformat(record["ts"]) - datetime.now(UTC)) < timedelta(minutes=1)
        assert {"ts", "level", "logger", "message"} <= record.keys()
    return records


def test_a_bad_setting_is_reported_as_json_and_the_token_is_scrubbed(tmp_path: Path) -> None:
    result = run_worker(tmp_path, LOG_FORMAT="json", COMMIT_INTERVAL_SECONDS="-1", SLACK_BOT_TOKEN=TOKEN)
    assert result.returncode == 2
    (record,) = json_lines(result.stderr)
    assert record["level"] == "ERROR" and record["logger"] == "worker"
    assert record["message"] == (
        "invalid settings:\n  environment variable COMMIT_INTERVAL_SECONDS: Input should be greater than 0 (got '-1')"
    )
    assert TOKEN not in result.stderr + result.stdout


def test_every_rules_problem_is_its_own_json_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: a\n    when: {scor: 3}\n    severity: urgent\n")
    result = run_worker(tmp_path, LOG_FORMAT="json", RULES_PATH=str(rules))
    assert result.returncode == 2
    records = json_lines(result.stderr)
    assert [r["message"].split(" (")[0] for r in records] == [
        "2 problem(s) in rules:",
        f"{rules}:3: rule 'a': when: unknown field path 'scor'",
        f"{rules}:4: rule 'a': severity must be one of critical, high, medium, low, info, got 'urgent'",
    ]
    assert {r["level"] for r in records} == {"ERROR"}


def test_log_format_from_the_config_file_applies_to_errors_found_after_loading_it(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - id: a\n    when: {survey: nps}\n    alert: {template: nope.j2}\n")
    config = tmp_path / "worker.yaml"
    config.write_text(f"log_format: json\nrules_path: {rules}\n")
    result = run_worker(tmp_path, "--config", str(config))
    assert result.returncode == 2
    records = json_lines(result.stderr)
    assert records[1]["message"].startswith(f"{rules}:4: rule 'a': template 'nope.j2' not found")


def test_without_log_format_start_up_errors_stay_plain_text(tmp_path: Path) -> None:
    result = run_worker(tmp_path, COMMIT_INTERVAL_SECONDS="-1")
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid settings:\n")


def test_a_bad_log_format_is_a_setting_error_in_text(tmp_path: Path) -> None:
    result = run_worker(tmp_path, LOG_FORMAT="yaml")
    assert result.returncode == 2
    assert "environment variable LOG_FORMAT: Input should be 'text' or 'json' (got 'yaml')" in result.stderr


# -- the formatter ----------------------------------------------------------------------


def emit(logger: logging.Logger, secrets: list[str], call) -> list[str]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    redact = RedactSecrets(secrets)
    handler.setFormatter(JsonFormatter(redact))
    handler.addFilter(redact)
    logger.handlers[:] = [handler]
    logger.propagate, logger.level = False, logging.DEBUG
    call()
    return stream.getvalue().splitlines()  # splits on U+2028 too, as many log readers do


def test_the_formatter_gives_extras_a_traceback_and_one_line_per_record_without_secrets() -> None:
    secret = "sasl-pw-5f0c9a"
    log = logging.getLogger("worker.test_logs")

    def calls() -> None:
        log.warning(
            "invalid event → DLQ: comment «Zürich ☕»\nsecond line\u2028third %s",
            secret,
            extra={
                "event_id": "evt-1",
                "task_id": "t-9",
                "topic": "feedback.events",
                "partition": 2,
                "offset": 41,
                "unrelated": "not shown",
            },
        )
        try:
            raise ConnectionError(f"cannot reach sasl://cx:{secret}@broker:9093")
        except ConnectionError:
            log.exception("connection failed", extra={"event_id": f"evt-{secret}"})
        log.info("plain")

    lines = emit(log, [secret], calls)
    assert len(lines) == 3  # newlines, U+2028 and a traceback do not split a record
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "invalid event → DLQ: comment «Zürich ☕»\nsecond line\u2028third **********"
    assert "Zürich ☕" in lines[0]  # readable, not \u escapes
    assert {k: first[k] for k in ("event_id", "task_id", "topic", "partition", "offset")} == {
        "event_id": "evt-1",
        "task_id": "t-9",
        "topic": "feedback.events",
        "partition": 2,
        "offset": 41,
    }
    assert "unrelated" not in first and "exc" not in first
    assert first["level"] == "WARNING" and first["logger"] == "worker.test_logs" and TS.match(first["ts"])
    assert second["message"] == "connection failed" and second["level"] == "ERROR"
    assert second["exc"].startswith("Traceback (most recent call last):")
    assert second["exc"].endswith("ConnectionError: cannot reach sasl://cx:**********@broker:9093")
    assert second["event_id"] == "evt-**********"  # an extra is scrubbed too
    assert third == {"ts": third["ts"], "level": "INFO", "logger": "worker.test_logs", "message": "plain"}
    assert all(secret not in line for line in lines)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_setup_logging_json_writes_json_to_stderr(capsys, restore_logging) -> None:
    setup_logging("INFO", [TOKEN], "json")
    logging.getLogger("worker").info("token %s", TOKEN, extra={"offset": 7})
    logging.getLogger("worker").debug("below the level")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["message"] == "token **********" and record["offset"] == 7


def test_a_routing_fallback_names_its_event_as_a_field(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rules_file = tmp_path / "r.yaml"
    rules_file.write_text("rules:\n  - id: r\n    when: {survey: nps}\n    alert: {channel: '#cx-{{ comment }}'}\n")
    rule = load_rules(rules_file).rules[0]
    event = FeedbackEvent.model_validate(
        {
            "event_id": "evt-42",
            "occurred_at": "2026-11-24T10:00:00Z",
            "survey": "nps",
            "score": 3,
            "comment": "no spaces allowed in a channel",
            "customer": {"id": "c"},
        }
    )
    with caplog.at_level(logging.WARNING, logger="worker.rules.routing"):
        assert Router(default_channel="#fallback").destination(event, rule).channel == "#fallback"
    (record,) = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    assert record["event_id"] == "evt-42" and "is not a valid name: falling back" in record["message"]


def test_a_library_error_repeated_during_an_outage_is_printed_once_a_minute_with_a_count(capsys, restore_logging) -> None:
    """kafka-python logs every failed attempt while the broker is down; the log stays readable, and says what it left out."""
    setup_logging("INFO", [TOKEN], "text")
    quiet = next(f for f in logging.getLogger().handlers[0].filters if isinstance(f, QuietRepeats))
    now = [1000.0]
    quiet.clock = lambda: now[0]
    kafka, ours = logging.getLogger("kafka.net.manager"), logging.getLogger("worker")
    for _ in range(100):
        kafka.error("Connection failed: %s", "KafkaConnectionError: 111 ECONNREFUSED")
        ours.warning("could not commit offsets")  # the worker's own lines are never left out
        now[0] += 0.5
    kafka.warning("No node available for metadata refresh - backoff/retry")  # another kind: shown
    now[0] += 20
    kafka.error("Connection failed: %s", f"{TOKEN} refused")
    lines = capsys.readouterr().err.splitlines()
    failed = [line for line in lines if "Connection failed" in line]
    assert len(failed) == 2 and "more like it" not in failed[0]
    assert failed[1].endswith("Connection failed: ********** refused (and 99 more like it in the last 70 s)")
    assert sum("could not commit offsets" in line for line in lines) == 100
    assert sum("No node available" in line for line in lines) == 1


def test_at_debug_level_every_library_line_is_printed(capsys, restore_logging) -> None:
    setup_logging("DEBUG", [], "text")
    for _ in range(3):
        logging.getLogger("kafka.net.manager").error("Connection failed")
    assert capsys.readouterr().err.count("Connection failed") == 3
