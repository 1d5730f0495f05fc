"""Kafka in one place: the embedded broker (demo, tests, benchmark) and the clients built from Settings."""

from .clients import admin_client, common_config, ensure_topics, make_consumer, make_producer, make_state_consumer, state_topic
from .embedded import EmbeddedBroker, free_port
from .reading import CONNECT_TIMEOUT_S, TopicUnreadable, read_topic
from .topology import Problem, TopicFacts, Topology, TopologyError, check_topology, judge, topics_of, verify_topics

__all__ = [
    "CONNECT_TIMEOUT_S",
    "TopicUnreadable",
    "read_topic",
    "EmbeddedBroker",
    "Problem",
    "TopicFacts",
    "Topology",
    "TopologyError",
    "admin_client",
    "check_topology",
    "judge",
    "topics_of",
    "verify_topics",
    "common_config",
    "ensure_topics",
    "free_port",
    "make_consumer",
    "make_producer",
    "make_state_consumer",
    "state_topic",
]
