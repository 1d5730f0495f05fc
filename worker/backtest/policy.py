"""What throttling and grouping would have done to history, by event time (for `rules test`).

The worker decides by wall clock as answers arrive; a backtest replays months in seconds, so
it uses each answer's `occurred_at` instead. Rules with `throttle:` hold the alert (and the
task: the worker adds the answer to the open one) of every match inside an open episode;
rules with `group:` count one digest message per group per `wait`/`interval`. The per-channel
rate limit is not simulated: it depends on arrival times the history does not record.
"""

from __future__ import annotations

from typing import Any

from ..events import FeedbackEvent, field_getter
from ..rules import Match, RuleSet
from .replay import AlertPolicy

THROTTLED = "throttled: a reply in the open task's thread"
GROUPED = "grouped: listed in a digest message"


def simulation_policy(rules: RuleSet) -> AlertPolicy | None:
    """None when no rule throttles or groups (the replay can then run in parallel)."""
    throttled = {r.id: (field_getter(r.throttle.key), r.throttle.window.total_seconds()) for r in rules.rules if r.throttle}
    grouped = {
        r.id: ([field_getter(p) for p in r.group.by], r.group.wait.total_seconds(), r.group.interval.total_seconds())
        for r in rules.rules
        if r.group
    }
    if not throttled and not grouped:
        return None
    episodes: dict[tuple[str, Any], float] = {}  # (rule, key value) -> episode end
    digests: dict[tuple[Any, ...], tuple[float, float]] = {}  # group -> (message due, next message allowed)

    def policy(event: FeedbackEvent, match: Match, channel: str) -> str | None:
        rule_id, ts = match.owner.id, event.occurred_at.timestamp()
        if rule_id in throttled:
            get, window = throttled[rule_id]
            value = get(event)
            if value is not None:
                until = episodes.get((rule_id, value))
                if until is not None and ts < until:
                    return THROTTLED
                episodes[(rule_id, value)] = ts + window
        if rule_id in grouped:
            getters, wait, interval = grouped[rule_id]
            key = (rule_id, channel, *(get(event) for get in getters))
            due, next_allowed = digests.get(key, (None, 0.0))
            if due is not None and ts < due:
                return GROUPED
            due = max(ts + wait, next_allowed)
            digests[key] = (due, due + interval)  # this match stands for the digest message
        return None

    return policy
