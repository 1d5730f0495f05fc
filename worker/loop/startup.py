"""Start-up checks: rules, templates, routes and metric rules loaded and validated together.

Everything that can be wrong before the first event (a template that does not render, a
metric rule on a window that is not computed, a rule without a channel) is found here, with
a clear message, instead of at 3 a.m. on the first detractor. The worker at start-up and on
reload, `rules check`, `rules test` and `template render` all load through this module.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..alerting import AlertRenderer, TemplateRenderError
from ..config import ConfigError, Settings
from ..events import FeedbackEvent
from ..metrics import MetricsConfig, MetricSnapshot, Tally, WindowRef, figures
from ..notation import format_duration
from ..rules import Match, Router, RulesError, RuleSet, compile_routes, load_rules
from ..tasks import open_task

SAMPLE_EVENT = FeedbackEvent.model_validate(
    {
        "event_id": "sample-1",
        "occurred_at": "2026-11-24T10:00:00+00:00",
        "survey": "nps",
        "score": 3,
        "comment": 'Sample comment with <!channel>, {{ 7*7 }} and "quotes"',
        "customer": {"id": "c-0", "name": "Sample Co", "segment": "smb", "monthly_value": 100.0},
        "channel": "email",
        "touchpoint": "support",
    }
)


SAMPLE_SNAPSHOT = MetricSnapshot(
    window=WindowRef(size="24h", start="2026-11-23T11:00:00+00:00", end="2026-11-24T11:00:00+00:00"),
    dimension={"customer.segment": "enterprise"},
    final=False,
    emitted_at="2026-11-24T10:00:00+00:00",
    **figures(Tally(responses=40, promoters=10, passives=10, detractors=20, unhappy={"c-0": (0, 100.0)}), 0.95),
)


def check_templates(rules: RuleSet, renderer: AlertRenderer) -> list[str]:
    """Render every template in use once with a sample event; return the problems."""
    problems = []
    now = datetime.now(UTC)
    for template in sorted({rule.alert.template for rule in rules.rules}):
        rule = next(r for r in rules.rules if r.alert.template == template)
        task = open_task(SAMPLE_EVENT, rule.id, [rule.id], rule.severity, rule.followup, now)
        try:
            renderer.render(template, "#sample", SAMPLE_EVENT, Match(owner=rule, rules=(rule,)), task)
        except TemplateRenderError as err:
            problems.append(str(err))
    for metric_rule in rules.metric_rules:
        try:
            renderer.render_metric(metric_rule, "#sample", SAMPLE_SNAPSHOT)
        except TemplateRenderError as err:
            problems.append(f"{metric_rule.location}: rule {metric_rule.id!r}: {err}")
    return problems


def check_metric_rules(rules: RuleSet, metrics: MetricsConfig) -> list[str]:
    """A metric rule must name a window size and a dimension the worker computes."""
    problems = []
    sizes = {w.size_s: w.label for w in metrics.windows}
    for rule in rules.metric_rules:
        condition = rule.condition
        if not metrics.enabled:
            problems.append(f"{rule.location}: rule {rule.id!r} needs metrics, but metrics.enabled is false")
        if int(condition.window.total_seconds()) not in sizes:
            problems.append(
                f"{rule.location}: rule {rule.id!r}: window {format_duration(condition.window)} is not a configured "
                f"metrics window (configured: {', '.join(sizes.values())})"
            )
        for path in condition.dimension:
            if path not in metrics.dimensions:
                problems.append(
                    f"{rule.location}: rule {rule.id!r}: dimension {path} is not configured "
                    f"(metrics.dimensions: {', '.join(metrics.dimensions) or 'none'})"
                )
    return problems


def make_router(settings: Settings) -> Router:
    """The routes table from the config file, compiled; raises ConfigError with every mistake's file:line."""
    try:
        return Router(compile_routes(settings.routes), settings.slack_default_channel)
    except RulesError as err:
        raise ConfigError(str(err)) from None


def load_checked(settings: Settings) -> tuple[RuleSet, AlertRenderer]:
    """Rules and templates, validated; raises RulesError or ConfigError."""
    rules = load_rules(settings.rules_path, settings.templates_path)
    renderer = AlertRenderer(settings.templates_path)
    problems = check_templates(rules, renderer) + check_metric_rules(rules, settings.metrics)
    if settings.slack_bot_token is not None and not make_router(settings).has_default_channel():
        problems += [
            f"{rule.location}: rule {rule.id!r} names no alert channel, and neither SLACK_DEFAULT_CHANNEL nor a default route is set"
            for rule in rules.rules
            if not rule.alert.channel
        ]
        problems += [
            f"{rule.location}: rule {rule.id!r} names no alert channel, and neither SLACK_DEFAULT_CHANNEL nor a default route is set"
            for rule in rules.metric_rules
            if not rule.channel
        ]
    if problems:
        raise ConfigError("\n".join(problems))
    return rules, renderer
