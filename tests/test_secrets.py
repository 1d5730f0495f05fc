"""The Slack token and the SASL password never show: not in logs, reprs, config errors or outcomes."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.alerting.test_alerts import make_event, render_alert
from tests.fake_slack import FakeSlack, Scripted
from worker import cli
from worker.alerting import AlertRenderer
from worker.config import ConfigError, load_settings
from worker.delivery import SlackSink
from worker.logs import RedactSecrets, setup_logging
from worker.rules import load_rules

ROOT = Path(__file__).resolve().parent.parent
MASK = "**********"


@pytest.fixture
def token() -> str:
    return "xoxb-1234-5678-" + uuid.uuid4().hex


@pytest.fixture
def password() -> str:
    return "sasl-pw-" + uuid.uuid4().hex


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging() rewires the root logger; put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("slack_sdk", "kafka")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("SLACK_", "KAFKA_", "LOG_LEVEL")):
            monkeypatch.delenv(name)


def an_alert(channel: str = "#cx-alerts"):
    renderer = AlertRenderer(ROOT / "templates")
    rules = load_rules(ROOT / "rules", ROOT / "templates")
    return render_alert(renderer, rules, "alert.slack.j2", make_event(event_id=f"evt-{uuid.uuid4().hex[:8]}"), channel=channel)


def test_secrets_never_reach_the_log_output_even_at_debug(token, password, capsys, restore_logging):
    with FakeSlack(token=token, channels={"#cx-alerts"}) as slack:
        settings = load_settings(
            None,
            environ={"SLACK_BOT_TOKEN": token, "KAFKA_SASL_PASSWORD": password, "SLACK_API_URL": slack.url, "LOG_LEVEL": "DEBUG"},
        )
        setup_logging(settings.log_level, settings.secrets())
        # setup_logging quiets slack_sdk; open it fully, so its request and response dumps are checked too.
        logging.getLogger("slack_sdk").setLevel(logging.DEBUG)

        sink = SlackSink(settings.slack_bot_token, settings.slack_api_url, concurrency=1, max_backoff_s=0.05)
        try:
            slack.fail_next(Scripted(error="service_unavailable"), Scripted(status=500))
            sent = sink.submit(an_alert(), threading.Event()).result(timeout=15)
            refused = sink.submit(an_alert(channel="#nowhere"), threading.Event()).result(timeout=15)
        finally:
            sink.close()
        assert sent.status == "sent" and refused.status == "undeliverable"
        logging.getLogger("worker").error("ALERT NOT DELIVERED: %s (sink %r, settings %r)", refused.reason, sink, settings)

        # What libraries do: dump headers, put credentials in URLs, log exceptions that quote them.
        logging.getLogger("urllib3.connectionpool").debug("request headers: %s", {"Authorization": f"Bearer {token}"})
        logging.getLogger("kafka.conn").warning("SASL authentication failed for user cx with password %s", password)
        try:
            raise ConnectionError(f"cannot reach sasl://cx:{password}@broker:9093 using token {token}")
        except ConnectionError:
            logging.getLogger("kafka.conn").exception("connection failed")

    err = capsys.readouterr().err
    # The capture worked: slack-sdk's own DEBUG lines, the retries, the library lines are all there.
    assert "slack_sdk.web.base_client: Sending a request" in err
    assert "Received the following response" in err
    assert "Slack unavailable" in err and "ALERT NOT DELIVERED" in err
    assert f"request headers: {{'Authorization': 'Bearer {MASK}'}}" in err
    assert f"with password {MASK}" in err
    assert "Traceback" in err and f"sasl://cx:{MASK}@broker:9093 using token {MASK}" in err
    # And the secrets themselves never appear.
    assert token not in err
    assert password not in err


def test_redaction_filter_scrubs_message_arguments_and_exception_text(token):
    records: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactSecrets([token, "", "abc"]))  # empty and very short secrets are ignored
    logger = logging.getLogger(f"test.redact.{uuid.uuid4().hex}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.warning("token=%s and again %s", token, token)
    logger.warning("abc stays readable")
    try:
        raise ValueError(f"bad header: Bearer {token}")
    except ValueError:
        logger.error("boom", exc_info=True)
    assert records[0] == f"token={MASK} and again {MASK}"
    assert records[1] == "abc stays readable"
    assert "ValueError: bad header: Bearer " + MASK in records[2]
    assert all(token not in record for record in records)


def test_settings_repr_and_dump_hide_secrets(token, password):
    settings = load_settings(None, environ={"SLACK_BOT_TOKEN": token, "KAFKA_SASL_PASSWORD": password, "KAFKA_SASL_USERNAME": "cx"})
    assert settings.slack_bot_token.get_secret_value() == token  # still usable by the code that needs it
    assert sorted(settings.secrets()) == sorted([token, password])
    for shown in (repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()):
        assert token not in shown and password not in shown
        assert MASK in shown
    assert "cx" in repr(settings)  # the username is not a secret


def test_sink_repr_hides_the_token(token):
    sink = SlackSink(SecretStr(token), "http://127.0.0.1:9/api/", concurrency=1)
    try:
        for shown in (repr(sink), str(sink), f"{sink!r}"):
            assert token not in shown
            assert "http://127.0.0.1:9/api/" in shown
    finally:
        sink.close()


@pytest.mark.parametrize(
    "environ, bad",
    [
        ({"SLACK_CONCURRENCY": "lots"}, "SLACK_CONCURRENCY"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_CARRIER_PIGEON"}, "KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_config_error_next_to_secrets_does_not_show_them(token, password, environ, bad):
    with pytest.raises(ConfigError) as raised:
        load_settings(None, environ={"SLACK_BOT_TOKEN": token, "KAFKA_SASL_PASSWORD": password} | environ)
    message = str(raised.value)
    assert bad in message
    assert token not in message and password not in message


def test_config_file_errors_do_not_show_secrets(tmp_path, token, password):
    config = tmp_path / "worker.yaml"
    config.write_text(
        f"slack_bot_token: {token}\nkafka_sasl_password: {password}\nslack_concurrency: 0\nlog_level: LOUD\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={})
    message = str(raised.value)
    assert f"{config}:3" in message and f"{config}:4" in message
    assert token not in message and password not in message


def test_invalid_secret_values_are_reported_without_the_value(tmp_path, token, password):
    # A secret of the wrong type: the error names where it is, never what it is.
    config = tmp_path / "worker.yaml"
    config.write_text(f"slack_bot_token: [{token}]\nkafka_sasl_password: {{pw: {password}}}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ={})
    message = str(raised.value)
    assert f"{config}:1" in message and f"{config}:2" in message
    assert token not in message and password not in message


def test_cli_reports_bad_config_without_secrets(tmp_path, token, password, capsys, clean_environ, monkeypatch):
    config = tmp_path / "worker.yaml"
    config.write_text(f"slack_bot_token: {token}\nkafka_sasl_password: {password}\nslack_concurrency: none\n", encoding="utf-8")
    monkeypatch.setenv("SLACK_BOT_TOKEN", token)
    monkeypatch.setenv("COMMIT_INTERVAL_SECONDS", "-1")
    assert cli.main(["run", "--config", str(config)]) == cli.EXIT_USAGE
    captured = capsys.readouterr()
    assert "COMMIT_INTERVAL_SECONDS" in captured.err and f"{config}:3" in captured.err
    assert token not in captured.err + captured.out and password not in captured.err + captured.out


def test_unparseable_config_file_does_not_quote_the_secret_line(tmp_path, token, password, capsys, clean_environ):
    config = tmp_path / "worker.yaml"
    config.write_text(f'slack_bot_token: "{token}\nkafka_sasl_password: {password}: x\n', encoding="utf-8")
    assert cli.main(["run", "--config", str(config)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "invalid YAML" in err and str(config) in err
    assert token not in err and password not in err


def test_outcome_reasons_do_not_carry_the_token(token):
    with FakeSlack(token="xoxb-the-real-one", channels={"#cx-alerts"}) as slack:
        slack.fail_next(Scripted(status=403, error="not_allowed_token_type"))
        sink = SlackSink(SecretStr(token), slack.url, concurrency=1, max_backoff_s=0.05)
        try:
            outcomes = [
                sink.submit(an_alert(), threading.Event()).result(timeout=15),  # HTTP 403
                sink.submit(an_alert(), threading.Event()).result(timeout=15),  # wrong token: invalid_auth
            ]
            abandon = threading.Event()
            abandon.set()
            outcomes.append(sink.submit(an_alert(), abandon).result(timeout=15))
        finally:
            sink.close()
    assert [o.status for o in outcomes] == ["undeliverable", "undeliverable", "abandoned"]
    assert "not_allowed_token_type" in outcomes[0].reason and "invalid_auth" in outcomes[1].reason
    for outcome in outcomes:
        assert token not in outcome.reason and token not in repr(outcome)
