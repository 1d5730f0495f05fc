"""Kafka in one place: the embedded broker (demo, tests, benchmark) and the clients built from Settings."""

from .clients import common_config, ensure_topics, make_consumer, make_producer, make_state_consumer, state_topic
from .embedded import EmbeddedBroker, free_port

__all__ = [
    "EmbeddedBroker",
    "common_config",
    "ensure_topics",
    "free_port",
    "make_consumer",
    "make_producer",
    "make_state_consumer",
    "state_topic",
]
