"""A worker process as Kubernetes and Prometheus see it: /readyz before and after the join, /metrics after N events."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from typing import Any

from tests.conftest import all_committed, event_bytes, produce, wait_for
from tests.harness import by_label, parse, value

P = "feedback_worker_"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str) -> tuple[int, str] | None:
    """(status, body), or None while nothing listens yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None


class Gate:
    """Kafka's bootstrap address, closed until `open()`: the worker waits for it (broker/clients.py) with its
    HTTP server already up, so the test sees /readyz before the group join for certain, not by timing."""

    def __init__(self, port: int, upstream: str) -> None:
        host, _, upstream_port = upstream.rpartition(":")
        self.port, self.upstream = port, (host, int(upstream_port))
        self.listener: socket.socket | None = None

    def open(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()

    def _accept(self) -> None:
        assert self.listener is not None
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self.upstream)
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, target), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_probes_and_metrics_of_a_running_worker(kafka_bootstrap: str, topics: dict[str, str], start_worker: Any, fake_slack: Any) -> None:
    http, gate = free_port(), Gate(free_port(), kafka_bootstrap)
    worker = start_worker(HTTP_PORT=str(http), KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{gate.port}")
    try:
        status, body = wait_for(lambda: get(http, "/readyz"), 30, "the worker's HTTP server")
        assert status == 503, body
        assert json.loads(body)["failed"] == ["joined", "state", "slack"], body
        assert get(http, "/healthz")[0] == 200  # starting up is alive

        gate.open()
        worker.wait_assigned()
        status, body = wait_for(lambda: (answer := get(http, "/readyz")) and answer[0] == 200 and answer, 30, "/readyz 200")
        assert json.loads(body)["checks"]["slack"] == {"ok": True, "detail": "auth.test answered"}
        assert fake_slack.calls_to("auth.test"), "readiness asked Slack"

        quiet = [event_bytes(score=10) for _ in range(20)]
        detractors = [event_bytes(score=3, customer={"id": f"c-{n}", "segment": "smb", "monthly_value": 50.0}) for n in range(4)]
        invalid = [b"not json", b"{}", event_bytes(score=11)]
        end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], [(None, v) for v in quiet + detractors + invalid])
        wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 60, "every event committed")
        # Offsets are committed before Slack answers (the outbox), and one scrape reads the Slack call
        # histogram before the loop's counters: wait for a scrape that saw every post land, then read the next.
        wait_for(
            lambda: (
                (answer := get(http, "/metrics")) is not None
                and by_label(parse(answer[1]), P + "alerts_posted_total", "channel") == {"#cx-alerts": 4}
            ),
            60,
            "the four alerts posted",
        )
        status, text = get(http, "/metrics")
        assert status == 200
        m = parse(text)
        events = topics["FEEDBACK_TOPIC"]
        consumed = {int(p): n for p, n in by_label(m, P + "events_consumed_total", "partition").items()}
        assert consumed == {p: n for p, n in end.items()}, "per partition, as produced"
        assert sum(by_label(m, P + "events_valid_total", "partition").values()) == 24
        assert sum(by_label(m, P + "events_invalid_total", "partition").values()) == 3
        assert by_label(m, P + "rule_matches_total", "rule") == {"nps-detractor": 4}
        assert by_label(m, P + "alerts_posted_total", "channel") == {"#cx-alerts": 4}
        assert len(fake_slack.messages) == 4
        assert value(m, P + "slack_request_duration_seconds_count", method="chat.postMessage") == 4
        assert value(m, P + "dead_letters_total", type="feedback.invalid") == 3
        lag = {labels: v for (name, labels), v in m.items() if name == P + "consumer_lag_records" and dict(labels)["topic"] == events}
        assert lag and set(lag.values()) == {0}, lag
        assert value(m, P + "alerts_in_flight") == 0
        assert get(http, "/healthz")[0] == 200
    finally:
        gate.close()
