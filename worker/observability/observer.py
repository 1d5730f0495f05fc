"""One worker process's /metrics, /healthz and /readyz: the registry, the probes and the server, wired.

The server starts before the worker connects (service.py), so the probes answer during
start-up (alive; not ready); the worker and its sink are attached once built. HTTP_PORT=0
serves nothing. A port already taken is logged as an error and the worker runs on without
the endpoints (Kubernetes' probes then fail and say why): the feedback is not held hostage
by the monitoring.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from ..config import Settings
from ..delivery import Call
from ..loop import Worker
from .health import Health, SlackReachability
from .metrics import SlackCalls, WorkerCollector
from .server import HttpServer

log = logging.getLogger(__name__)


class Observability:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()  # our own, not the global one: several workers may share a process (tests)
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, process_cpu_seconds_total, ...
        PlatformCollector(registry=self.registry)
        self.slack_calls = SlackCalls(self.registry)
        self.collector = WorkerCollector()
        self.registry.register(self.collector)
        if settings.slack_bot_token is None:
            self.slack = SlackReachability(None, "SLACK_BOT_TOKEN is not set: alerts go to stdout")
        else:  # asked once the sink exists (attach)
            self.slack = SlackReachability(lambda: "not asked yet")
        self.health = Health(settings.health_poll_timeout_seconds, self.slack)
        self.server: HttpServer | None = None

    def start(self) -> Observability:
        port = self.settings.http_port
        if port:
            try:
                self.server = HttpServer(port, self.registry, self.health.live, self.health.ready).start()
                log.info("serving /metrics, /healthz and /readyz on port %d", port)
            except OSError as err:
                log.error("cannot serve /metrics, /healthz and /readyz on HTTP_PORT %d (%s): running without them", port, err)
        return self

    def observe(self, method: str, seconds: float, call: Call) -> None:
        """The sink's report of each Slack call (delivery/sinks.py Observe): latency, and whether Slack is there."""
        self.slack_calls(method, seconds, call)
        self.slack.observe(method, seconds, call)

    def attach(self, worker: Worker, sink: Any) -> None:
        """The worker is built: read its figures, and ask Slack (auth.test) if there is a Slack to ask."""
        if self.settings.slack_bot_token is not None:
            check = getattr(sink, "check", None)
            self.slack = SlackReachability(check, "a custom sink: Slack not checked")
            self.health.slack = self.slack
            if self.server is not None:
                self.slack.start()
        self.collector.attach(worker, sink)
        self.health.attach(worker)

    def close(self) -> None:
        self.slack.close()
        if self.server is not None:
            self.server.close()

    def __enter__(self) -> Observability:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
