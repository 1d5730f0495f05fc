"""Wiring: from Settings to a running Worker.

Bad rules, templates and settings are refused here, before connecting (checks.py); then the
topics, the Kafka clients, the worker state topic and its tables, and the Slack sink are set
up and handed to the loop (app.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from .alerting import Posts, Silences, Sink, SlackSink, StdoutSink, Throttle
from .tasks import Cases
from .app import Worker
from .broker import ensure_topics, make_consumer, make_producer, make_state_consumer, state_topic
from .checks import load_checked, make_router
from .config import Settings, deprecations
from .metrics import Metering, MetricState
from .reload import Reloader
from .state import StateView
from .stats import Stats

log = logging.getLogger("worker")


def make_sink(settings: Settings) -> Sink:
    if settings.slack_bot_token is None:
        log.info("SLACK_BOT_TOKEN is not set: alerts are printed to stdout")
        return StdoutSink()
    log.info("posting alerts to Slack at %s", settings.slack_api_url)
    return SlackSink(settings.slack_bot_token, settings.slack_api_url, settings.slack_concurrency,
                     timeout_s=settings.slack_timeout_seconds, search=settings.slack_history_lookup)


def serve(
    settings: Settings,
    stop: threading.Event,
    sink: Sink | None = None,
    ready: threading.Event | None = None,
    reload: threading.Event | None = None,
) -> Stats:
    """Run the worker until `stop` is set; `reload` (SIGHUP) reloads rules and templates now.

    Raises on bad rules/config before connecting."""
    rules, renderer = load_checked(settings)
    log.info("loaded %d rules from %s", len(rules), ", ".join(rules.files))
    for message in deprecations(settings):
        log.warning(message)
    state = state_topic(settings)
    if settings.create_topics:
        outputs = [settings.followup_topic, settings.dlq_topic, settings.metrics_topic]
        compacted = [settings.metrics_topic, state]
        ensure_topics(settings, outputs, expect=[settings.feedback_topic], compacted=compacted)
        # One partition each: StateView.sync relies on a single ordered log (metrics, throttles and more live there);
        # the task actions are applied in one order by one worker, the owner of that partition (casework.py).
        ensure_topics(settings, [state, settings.task_actions_topic], partitions=1, compacted=compacted)
    sink = sink or make_sink(settings)
    consumer = make_consumer(settings)
    producer = make_producer(settings)
    state_consumer = make_state_consumer(settings)
    view = StateView(state, settings.feedback_topic, state_consumer, producer)
    metering = None
    if settings.metrics.enabled:
        metering = Metering(settings.metrics, settings.feedback_topic, MetricState(view), settings.metrics_topic, consumer, producer)
    reloader = Reloader(settings, load_checked, settings.reload_interval_seconds)
    if reload is not None:
        reloader.requested = reload
    worker = Worker(
        settings, rules, renderer, sink, consumer, producer, view, Throttle(view), Silences(view), Posts(view),
        Cases(view, settings.task_policy), make_router(settings),
        metering=metering, reloader=reloader,
    )
    if ready is not None:
        ready.set()
    try:
        return worker.run(stop)
    finally:
        sink.close()
        consumer.close(autocommit=False)
        state_consumer.close(autocommit=False)
        producer.close(timeout=timedelta(seconds=5).total_seconds())
