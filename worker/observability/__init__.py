"""Running it in production: Prometheus metrics and Kubernetes probes on HTTP_PORT.

metrics.py    /metrics: a collector that reads what the loop keeps, at scrape time; Slack's latency
health.py     /healthz (the loop polls) and /readyz (joined, state read, Slack reachable)
server.py     http.server on a daemon thread
observer.py   the three wired for one worker process (service.py starts it)
"""

from .health import Check, Health, SlackReachability
from .metrics import PREFIX, SlackCalls, WorkerCollector
from .observer import Observability
from .server import HttpServer

__all__ = ["Check", "Health", "HttpServer", "Observability", "PREFIX", "SlackCalls", "SlackReachability", "WorkerCollector"]
