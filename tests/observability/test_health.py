"""/healthz and /readyz: what each probe checks, what it answers, over real HTTP."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from tests.conftest import wait_for
from worker.config import load_settings
from worker.delivery import Call
from worker.observability import Check, Health, HttpServer, Observability, SlackReachability


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_worker(polled_at: float, joined: bool = True, synced: bool = True) -> Any:
    return SimpleNamespace(polled_at=polled_at, joined=joined, view=SimpleNamespace(synced=synced))


def off() -> SlackReachability:
    return SlackReachability(None, "SLACK_BOT_TOKEN is not set")


def test_alive_while_the_loop_polls_within_the_timeout_and_not_after() -> None:
    clock = Clock()
    health = Health(60, off(), clock)
    assert health.live()[0], "starting up: alive until the timeout"
    clock.now += 61
    alive, body = health.live()
    assert not alive and body == {"alive": False, "last_poll_seconds_ago": 61.0, "timeout_seconds": 60}

    health.attach(fake_worker(polled_at=clock.now - 2))
    assert health.live() == (True, {"alive": True, "last_poll_seconds_ago": 2.0, "timeout_seconds": 60})
    clock.now += 59
    assert not health.live()[0], "the loop stopped polling 61 s ago"


def test_ready_only_when_joined_state_read_and_slack_reachable_and_each_failure_is_named() -> None:
    clock = Clock()
    health = Health(60, off(), clock)
    ready, body = health.ready()
    assert not ready and body["failed"] == ["joined", "state"]
    assert body["checks"]["joined"] == {"ok": False, "detail": "not yet a member of the consumer group"}
    assert body["checks"]["slack"] == {"ok": True, "detail": "SLACK_BOT_TOKEN is not set"}

    health.attach(fake_worker(clock.now, joined=False, synced=True))
    assert health.ready()[1]["failed"] == ["joined"]
    health.attach(fake_worker(clock.now, joined=True, synced=True))
    assert health.ready() == (
        True,
        {
            "ready": True,
            "failed": [],
            "checks": {
                "joined": {"ok": True, "detail": "partitions assigned"},
                "state": {"ok": True, "detail": "state topic read to its end"},
                "slack": {"ok": True, "detail": "SLACK_BOT_TOKEN is not set"},
            },
        },
    )

    answers = iter(["auth.test: invalid_auth"])
    slack = SlackReachability(lambda: next(answers), recheck_s=60)
    health.slack = slack
    assert health.ready()[1]["checks"]["slack"] == {"ok": False, "detail": "auth.test not answered yet"}
    slack.start()
    wait_for(lambda: slack.state().detail == "auth.test: invalid_auth", 5, "the start-up auth.test")
    assert health.ready()[1]["failed"] == ["slack"]
    slack.close()


@pytest.fixture
def slack_down_then_up() -> Iterator[tuple[SlackReachability, list[str | None]]]:
    """A reachability check whose auth.test answers are scripted; the last one repeats."""
    answers: list[str | None] = ["auth.test: URLError: <urlopen error [Errno 111] Connection refused>", None]
    asked: list[str | None] = []

    def check() -> str | None:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        asked.append(answer)
        return answer

    slack = SlackReachability(check, recheck_s=0.05)
    yield slack, asked
    slack.close()


def test_slack_unreachable_at_start_is_asked_again_until_it_answers(slack_down_then_up) -> None:
    slack, asked = slack_down_then_up
    slack.start()
    wait_for(lambda: slack.state().ok, 5, "Slack reachable after a re-check")
    assert asked[:2] == [asked[0], None] and "Connection refused" in asked[0]
    assert slack.state().detail == "auth.test answered"


def test_a_call_that_finds_slack_unreachable_fails_readiness_until_slack_answers_again(slack_down_then_up) -> None:
    slack, asked = slack_down_then_up
    slack.start()
    wait_for(lambda: slack.state().ok, 5, "Slack reachable")
    slack.observe("chat.postMessage", 0.1, Call("unavailable", "ratelimited"))
    assert slack.state().ok, "rate-limited: Slack is there, and busy"
    slack.observe("chat.postMessage", 0.1, Call("refused", "channel_not_found"))
    assert slack.state().ok, "a bad channel is the alert's problem, not Slack's"

    checks_before = len(asked)
    slack.observe("chat.postMessage", 10.0, Call("unavailable", "HTTP 503 service_unavailable"))
    assert not slack.state().ok or len(asked) > checks_before  # failed at once (a re-check may already have answered)
    wait_for(lambda: len(asked) > checks_before and slack.state().ok, 5, "a re-check after the failure")

    slack.observe("chat.postMessage", 0.1, Call("refused", "token_revoked"))
    wait_for(lambda: len(asked) > checks_before + 1, 5, "a dead token is re-checked too")


def test_any_answer_from_slack_clears_a_failure_at_once() -> None:
    slack = SlackReachability(lambda: None)  # not started: only the calls speak
    slack.observe("conversations.history", 10.0, Call("unavailable", "TimeoutError"))
    assert slack.state() == Check(False, "conversations.history: TimeoutError")
    slack.observe("chat.postMessage", 0.2, Call("ok"))
    assert slack.state() == Check(True, "chat.postMessage answered")


def test_slack_off_is_ready_whatever_the_calls_say() -> None:
    slack = off()
    slack.observe("chat.postMessage", 1.0, Call("unavailable", "HTTP 500"))
    assert slack.state().ok and slack.state().detail == "SLACK_BOT_TOKEN is not set"


# -- over HTTP -------------------------------------------------------------------------------------------


def get(port: int, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


@pytest.fixture
def server() -> Iterator[tuple[HttpServer, dict[str, Any]]]:
    registry = CollectorRegistry()
    Counter("feedback_worker_demo", "A counter.", registry=registry).inc(3)
    state: dict[str, Any] = {"ready": (False, {"ready": False, "failed": ["joined"]})}
    server = HttpServer(0, registry, lambda: (True, {"alive": True}), lambda: state["ready"], host="127.0.0.1").start()
    yield server, state
    server.close()


def test_probes_answer_200_or_503_with_a_json_body_and_metrics_in_prometheus_text(server) -> None:
    server, state = server
    assert get(server.port, "/healthz") == (200, "application/json", json.dumps({"alive": True}))
    status, content_type, body = get(server.port, "/readyz")
    assert (status, content_type, json.loads(body)) == (503, "application/json", {"ready": False, "failed": ["joined"]})
    state["ready"] = (True, {"ready": True, "failed": []})
    assert get(server.port, "/readyz?verbose=1")[0] == 200
    status, content_type, body = get(server.port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    assert "feedback_worker_demo_total 3.0" in body.splitlines()
    assert get(server.port, "/nope")[0] == 404


def test_a_probe_that_raises_answers_500_and_the_server_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> tuple[bool, dict[str, Any]]:
        raise RuntimeError("a bug")

    server = HttpServer(0, CollectorRegistry(), broken, broken, host="127.0.0.1").start()
    try:
        with caplog.at_level(logging.ERROR):
            assert get(server.port, "/healthz")[0] == 500
        assert "error answering /healthz" in caplog.text
        assert get(server.port, "/metrics")[0] == 200
    finally:
        server.close()


def test_a_taken_port_is_logged_and_the_worker_runs_on_without_the_endpoints(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR), Observability(load_settings(None, environ={}, http_port=port)) as observability:
            assert observability.server is None
        assert f"cannot serve /metrics, /healthz and /readyz on HTTP_PORT {port}" in caplog.text


def test_http_port_0_serves_nothing() -> None:
    with Observability(load_settings(None, environ={}, http_port=0)) as observability:
        assert observability.server is None
