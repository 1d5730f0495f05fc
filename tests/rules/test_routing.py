"""Routing: templated channels and owners, the routes table, and the fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, load_settings
from worker.events import FeedbackEvent
from worker.loop.startup import make_router
from worker.rules import RulesError, load_rules

ROOT = Path(__file__).resolve().parents[2]

RULES = """\
rules:
  - id: by-segment
    when: {survey: nps, score: {lte: 6}}
    alert: {channel: "#cx-{{ customer.segment }}"}
    followup: {owner: "{{ customer.segment }}-success"}
  - id: routed
    when: {survey: csat}
"""
ROUTES = """\
routes:
  - when: {customer.segment: enterprise}
    channel: "#enterprise-escalations"
    owner: enterprise-cs
  - when: {attributes.region: apac}
    channel: "#cx-apac"
  - channel: "#cx-alerts"
    owner: cx-duty
"""


def event(**fields) -> FeedbackEvent:
    base = {
        "event_id": "e1",
        "occurred_at": "2026-11-24T10:00:00+00:00",
        "survey": "csat",
        "score": 2,
        "customer": {"id": "c1", "segment": "smb"},
    }
    return FeedbackEvent.model_validate(base | fields)


@pytest.fixture
def setup(tmp_path: Path):
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "worker.yaml").write_text(ROUTES)
    rules = load_rules(tmp_path / "rules.yaml")
    router = make_router(load_settings(tmp_path / "worker.yaml", environ={}))
    return {r.id: r for r in rules.rules}, router


def test_a_rule_channel_and_owner_may_be_templates_over_the_event(setup) -> None:
    rules, router = setup
    where = router.destination(event(survey="nps", score=3, customer={"id": "c1", "segment": "Mid-Market"}), rules["by-segment"])
    assert (where.channel, where.owner) == ("#cx-mid-market", "Mid-Market-success")  # channels are lower case in Slack


def test_routes_first_match_wins_then_the_default_route(setup) -> None:
    rules, router = setup
    enterprise = event(customer={"id": "c1", "segment": "enterprise"}, attributes={"region": "apac"})
    assert router.destination(enterprise, rules["routed"]) == ("#enterprise-escalations", "enterprise-cs")
    apac = event(attributes={"region": "apac"})
    assert router.destination(apac, rules["routed"]) == ("#cx-apac", "cx-duty")  # owner from the next route that has one
    assert router.destination(event(), rules["routed"]) == ("#cx-alerts", "cx-duty")


def test_a_rendered_name_that_is_not_a_channel_falls_back(setup) -> None:
    rules, router = setup
    hostile = event(survey="nps", score=0, customer={"id": "c1", "segment": "x <!channel> y"})
    where = router.destination(hostile, rules["by-segment"])
    assert where.channel == "#cx-alerts"  # not "#cx-x <!channel> y": the default route
    missing = event(survey="nps", score=0, customer={"id": "c1"})  # no segment: not "#cx-none"
    assert router.destination(missing, rules["by-segment"]) == ("#cx-alerts", "cx-duty")


def test_without_routes_the_default_channel_and_owner_apply(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    rule = load_rules(tmp_path / "rules.yaml").rules[1]
    router = make_router(load_settings(None, environ={"SLACK_DEFAULT_CHANNEL": "#general-cx"}))
    assert router.destination(event(), rule) == ("#general-cx", "cx-team")


def test_route_mistakes_name_the_config_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "worker.yaml"
    config.write_text("routes:\n  - when: {customer.segmnt: enterprise}\n    channel: '#x'\n")
    with pytest.raises(ConfigError) as caught:
        make_router(load_settings(config, environ={}))
    assert str(caught.value).startswith(f"{config}:2: routes[0].when: unknown field path 'customer.segmnt'")


def test_a_broken_channel_template_is_a_rules_error_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - id: r\n    when: {survey: nps}\n    alert: {channel: '#cx-{{ customer.segment }'}\n")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value.errors[0]).startswith(f"{path}:4: rule 'r': alert.channel: invalid template")
