"""Wiring: from Settings to a running Worker.

Bad rules, templates and settings are refused here, before connecting (loop/startup.py); then the
topics, the Kafka clients, the worker state topic and its tables, and the Slack sink are set
up and handed to the loop (loop/app.py). /metrics, /healthz and /readyz (observability/) are served
from before the first connection to after the last commit.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from slack_sdk import WebClient

from .alerting import Silences, Throttle
from .broker import TopologyError, ensure_topics, make_consumer, make_producer, make_state_consumer, state_topic, verify_topics
from .config import Settings, deprecations
from .delivery import Observe, Outbox, Posts, Sink, SlackSink, StdoutSink
from .interactions import SlackLink, actors_allowed
from .keeper import Keeper
from .loop import Loaded, MetricAlerts, Reloader, RisingComplaints, Rulebook, Tables, Worker, load_checked, make_router
from .metrics import LoopBook, Metering, MetricState, MetricWatch
from .observability import Observability
from .rising import TermState
from .stream import StateView, Stats, Stream, check_kafka_internals
from .tasks import Cases, follow_cases

log = logging.getLogger("worker")


def make_sink(settings: Settings, observe: Observe | None = None) -> Sink:
    if settings.slack_bot_token is None:
        log.info("SLACK_BOT_TOKEN is not set: alerts are printed to stdout")
        return StdoutSink()
    log.info("posting alerts to Slack at %s", settings.slack_api_url)
    return SlackSink(
        settings.slack_bot_token,
        settings.slack_api_url,
        settings.slack_concurrency,
        timeout_s=settings.slack_timeout_seconds,
        observe=observe,
        search=settings.slack_history_lookup,
    )


def make_link(settings: Settings, cases: Cases, producer: KafkaProducer) -> SlackLink | None:
    """Slack interactivity over Socket Mode, with SLACK_APP_TOKEN (and a bot token to answer with)."""
    if settings.slack_app_token is None or settings.slack_bot_token is None:
        if settings.slack_app_token is not None:
            log.warning("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not: alerts are printed, so there are no buttons")
        return None

    def send(action: dict[str, Any]) -> bool:
        try:  # in Kafka before the envelope is acknowledged: a click is never lost to a crash in between
            producer.send(settings.task_actions_topic, key=action["task_id"].encode(), value=json.dumps(action).encode()).get(timeout=5)
            return True
        except Exception as err:  # KafkaError, a timeout: the user is told to try again
            log.error("could not send a Slack action to %s: %s", settings.task_actions_topic, err)
            return False

    web = WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, timeout=5)
    return SlackLink(
        settings.slack_app_token,
        settings.slack_bot_token,
        settings.slack_api_url,
        cases,
        settings.task_policy,
        send,
        actors_allowed(settings.task_actors, web),
    )


def build_worker(
    settings: Settings,
    loaded: Loaded,
    sink: Sink,
    consumer: KafkaConsumer,
    producer: KafkaProducer,
    view: StateView,
    cases: Cases,
    metering: Metering | None = None,
    reloader: Reloader | None = None,
    link: SlackLink | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Worker:
    """The loop and everything it hands work to, wired once: the stream's bookkeeping, the state tables, the outbox
    every Slack message goes through, the keeper of tasks, the metric rules' alerts and rising complaints."""
    rules, renderer = loaded
    stream = Stream.open(consumer, producer, settings.commit_interval_seconds, settings.dlq_topic, settings.metrics_topic)
    tables = Tables(view, Throttle(view), Silences(view), cases)
    book = Rulebook(rules, renderer, make_router(settings))
    # Every Slack message goes through the outbox, once; never while this worker may have been evicted (in doubt).
    outbox = Outbox(
        sink,
        Posts(view),
        producer.flush,
        stream.dead_letters,
        stream.stats,
        lambda: clock().timestamp(),
        settings.slack_history_lookup,
        settings.slack_timeout_seconds + 5,
        in_doubt=stream.membership.in_doubt,
    )
    keeper = Keeper(settings, cases, stream.checkpoint, stream.dead_letters, outbox, lambda: book.renderer, stream.stats, clock, sink)
    if metering is not None:
        alerts = MetricAlerts(outbox, tables.silences, lambda: book.renderer, settings.slack_default_channel, stream.stats, clock)
        book.watch = MetricWatch(rules.metric_rules, metering.state, metering.emitter.current_start, alerts.fire)
        metering.emitter.watchers.append(book.watch)
    # Rising complaints (`emerging:` in the rules): term counts published with each checkpoint, before its commit.
    terms = TermState(view)
    emerging = RisingComplaints(
        terms, outbox, tables.silences, lambda: book.rules, lambda: book.renderer, consumer, settings.feedback_topic, clock, stream.stats
    )
    stream.checkpoint.before_flush.append(
        lambda parts: emerging.checkpoint(stream.checkpoint.next_offsets(settings.feedback_topic), int(clock().timestamp()), parts)
    )
    return Worker(settings, book, tables, stream, outbox, keeper, metering, reloader, link, clock, emerging)


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
    with Observability(settings) as observability:
        return _serve(settings, stop, sink, ready, reload, (rules, renderer), observability)


def _serve(
    settings: Settings,
    stop: threading.Event,
    sink: Sink | None,
    ready: threading.Event | None,
    reload: threading.Event | None,
    loaded: Loaded,
    observability: Observability,
) -> Stats:
    rules, renderer = loaded
    state = state_topic(settings)
    if settings.create_topics:
        outputs = [settings.followup_topic, settings.dlq_topic, settings.metrics_topic, settings.survey_request_topic]
        compacted = [settings.metrics_topic, state]
        ensure_topics(settings, outputs, expect=[settings.feedback_topic], compacted=compacted)
        # One partition each: StateView.sync relies on a single ordered log (metrics, throttles and more live there);
        # the task actions are applied in one order by one worker, the owner of that partition (keeper/keeper.py).
        ensure_topics(settings, [state, settings.task_actions_topic], partitions=1, compacted=compacted)
    # Before joining the group: topics made by other tooling may break what the worker relies on (broker/topology.py).
    topology = verify_topics(settings, state)
    for warning in topology.warnings:
        log.warning("%s", warning)
    if not topology.ok:
        raise TopologyError(topology.problems)
    sink = sink or make_sink(settings, observability.observe)
    consumer = make_consumer(settings)
    check_kafka_internals(consumer)  # refuses a kafka-python whose internals the rebalance listener cannot use
    producer = make_producer(settings)
    state_consumer = make_state_consumer(settings)
    view = StateView(state, settings.feedback_topic, state_consumer, producer)
    cases = Cases(view, settings.task_policy)
    metering = None
    if settings.metrics.enabled:
        loop = LoopBook(settings.metrics)  # the loop KPIs, from every case as it changes (here or on another replica)
        cases.watchers.append(follow_cases(loop, settings.task_policy.sla_calendar))
        metering = Metering(settings.metrics, settings.feedback_topic, MetricState(view), settings.metrics_topic, consumer, producer, loop)
    link = make_link(settings, cases, producer)
    reloader = Reloader(settings, load_checked, settings.reload_interval_seconds)
    if reload is not None:
        reloader.requested = reload
    worker = build_worker(
        settings, (rules, renderer), sink, consumer, producer, view, cases, metering=metering, reloader=reloader, link=link
    )
    observability.attach(worker, sink)
    if ready is not None:
        ready.set()
    try:
        if link is not None:
            link.start()
        return worker.run(stop)
    finally:
        if link is not None:
            link.close()
        sink.close()
        consumer.close(autocommit=False)
        state_consumer.close(autocommit=False)
        producer.close(timeout=5)
