"""kafka-python clients built from Settings, and topic set-up."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from ..config import DEFAULT_STATE_TOPIC, LEGACY_STATE_TOPIC, Settings

log = logging.getLogger(__name__)


def common_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "client_id": "feedback-worker",
        "security_protocol": settings.kafka_security_protocol,
        "reconnect_backoff_max_ms": settings.kafka_reconnect_backoff_max_ms,
    }
    if settings.kafka_sasl_mechanism:
        config["sasl_mechanism"] = settings.kafka_sasl_mechanism
        config["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if settings.kafka_ssl_cafile:
        config["ssl_cafile"] = settings.kafka_ssl_cafile
    return config


def make_consumer(settings: Settings, **extra: Any) -> KafkaConsumer:
    """A group member that never commits on its own: the checkpoint decides when.

    KAFKA_FETCH_MAX_WAIT_MS bounds how long a fetch may wait for new events: with real Kafka
    (fetch_min_bytes=1) an event ends the wait at once; a broker that holds every fetch for the
    whole wait, like the embedded Tansu, delays each event by up to that much."""
    config = common_config(settings) | {
        "group_id": settings.consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": settings.kafka_auto_offset_reset,
        "max_poll_records": 500,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }
    if settings.kafka_session_timeout_ms is not None:
        config["session_timeout_ms"] = settings.kafka_session_timeout_ms
    if settings.kafka_heartbeat_interval_ms is not None:
        config["heartbeat_interval_ms"] = settings.kafka_heartbeat_interval_ms
    return KafkaConsumer(**(config | extra))


def make_state_consumer(settings: Settings) -> KafkaConsumer:
    """A plain reader of the worker state topic: no group, no commits (see state.StateView).

    The same fetch wait as the feedback consumer: a sync (start-up, every rebalance) waits for its marker."""
    config = common_config(settings) | {
        "group_id": None,
        "enable_auto_commit": False,
        "max_poll_records": 5000,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
    }
    return KafkaConsumer(**config)


def make_producer(settings: Settings, **extra: Any) -> KafkaProducer:
    """acks=all: a task or dead letter counts as published only once the broker has it."""
    config = common_config(settings) | {
        "acks": "all",
        "linger_ms": 5,
        "batch_size": 64 * 1024,
        "compression_type": None if settings.kafka_compression_type == "none" else settings.kafka_compression_type,
    }
    return KafkaProducer(**(config | extra))


def admin_client(settings: Settings, timeout_s: float) -> KafkaAdminClient:
    """An admin client, waiting up to `timeout_s` for the broker (it may still be starting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(**common_config(settings))
        except Exception as err:  # NoBrokersAvailable and friends
            if time.monotonic() > deadline:
                raise
            log.debug("waiting for Kafka at %s: %s", settings.kafka_bootstrap_servers, err)
            time.sleep(0.2)


def state_topic(settings: Settings, timeout_s: float = 30.0) -> str:
    """The worker state topic to use: STATE_TOPIC, or the old default for a deployment that predates it.

    A deployment that never named its state topic kept it at the old default; if that topic
    exists and the new default does not, its metric partials, throttle episodes and silences
    are there, so it stays in use (with a warning) instead of starting from nothing.
    """
    topic = settings.state_topic
    if "state_topic" in settings.model_fields_set or topic != DEFAULT_STATE_TOPIC:
        return topic
    admin = admin_client(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    if topic not in existing and LEGACY_STATE_TOPIC in existing:
        log.warning(
            "using the state topic %s: it holds this deployment's state from before STATE_TOPIC's default became %s. "
            "Set STATE_TOPIC=%s to keep it without this warning",
            LEGACY_STATE_TOPIC,
            DEFAULT_STATE_TOPIC,
            LEGACY_STATE_TOPIC,
        )
        return LEGACY_STATE_TOPIC
    return topic


def ensure_topics(
    settings: Settings,
    topics: list[str],
    partitions: int = 1,
    timeout_s: float = 30.0,
    expect: Sequence[str] = (),
    compacted: Sequence[str] = (),
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created.

    `expect`: topics we only read; a missing one is worth a warning, not a creation
    (its partition count is the producers' decision). `compacted`: keep the latest record per key.
    """
    admin = admin_client(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        for topic in expect:
            if topic not in existing:
                log.warning("topic %s does not exist yet: waiting for producers to create it", topic)
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            try:
                admin.create_topics(
                    [NewTopic(t, partitions, 1, topic_configs={"cleanup.policy": "compact"} if t in compacted else {}) for t in missing]
                )
            except TopicAlreadyExistsError:
                pass  # another replica created it first
            log.info("created topics: %s", ", ".join(missing))
        return missing
    finally:
        admin.close()
