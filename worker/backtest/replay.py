"""Backtest: replay recorded feedback through a set of rules and count what the worker would do.

Why: a rules change is a change in who gets paged. Before deploying one, ops want to see what
it would have done to last week's traffic: how many alerts, to which channels, on which days,
for which owners, and which rules never match or are always outranked.

The replay follows the worker's own steps (worker/loop/app.py `handle` and `act`): validate with
`events.event_data` (the model's reason for a bad one), refuse events dated in the future,
`RuleSet.evaluate_data`, and one task and at most one alert per event, owned by the
highest-severity match. It renders nothing and keeps only counters, so a million events take
seconds; the few events kept for `--show` are the only models it builds and holds on to.

Two hooks, so features the worker does not have yet can be replayed without changing this
loop: `AlertPolicy` (a future throttle or grouping decides whether an owned event's alert is
posted) and `Route` (where an alert and its task go, when that depends on the event).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from pydantic import ValidationError

from ..events import FUTURE_LIMIT_S, FeedbackEvent, event_data  # refused beyond the limit, as in the worker
from ..rules import NO_CHANNEL, Match, Rule, RuleSet
from ..stream import describe_validation_error

FUTURE_REASON = "occurred_at: more than 5 minutes in the future"

#: Decides, for an event a rule owns, whether its alert is posted: None posts it; a reason
#: (e.g. "throttled", "grouped") holds it back and is counted under that reason. The task
#: opens either way, as the worker opens one per owned event. Called in event order, with the
#: channel the alert would go to, so a stateful policy can keep per-channel windows.
AlertPolicy = Callable[[FeedbackEvent, Match, str], "str | None"]

#: Where an owned event goes: (channel, owner). None: the rule's own, as the worker does today.
Route = Callable[[FeedbackEvent, Rule], tuple[str, str]]


class Sample(NamedTuple):
    """An alert kept for `--show`: rendered only at the end, and only these few."""

    event: FeedbackEvent
    match: Match
    channel: str
    owner: str


class SourceUnavailable(Exception):
    """The history cannot be read (missing file, unknown topic, unreachable broker); says why.

    `usage`: the command line names something that is not there (exit 2), rather than a failure (exit 1).
    """

    def __init__(self, message: str, usage: bool = True) -> None:
        super().__init__(message)
        self.usage = usage


def static_route(rule: Rule, default_channel: str | None) -> tuple[str, str]:
    """The worker's choice (loop/app.py `act`): the rule's channel, else SLACK_DEFAULT_CHANNEL."""
    return rule.alert.channel or default_channel or NO_CHANNEL, rule.followup.owner


class Replay:
    """Counters for one backtest; `feed` batches of raw messages into it in input order."""

    def __init__(
        self,
        rules: RuleSet,
        default_channel: str | None = None,
        *,
        policy: AlertPolicy | None = None,
        route: Route | None = None,
        samples_per_rule: int = 0,
        now: float | None = None,
    ) -> None:
        self.rules = rules
        self.policy = policy
        self.route = route
        self.samples_per_rule = samples_per_rule
        self.future_limit = (time.time() if now is None else now) + FUTURE_LIMIT_S
        self.static = {rule.id: static_route(rule, default_channel) for rule in rules.rules}
        ids = [rule.id for rule in rules.rules]

        self.read = 0  # messages seen, blank lines excluded
        self.valid = 0
        self.blank = 0  # blank lines of a file: not events, not counted as invalid
        self.invalid: Counter[str] = Counter()  # reason -> count
        self.invalid_at: dict[str, str] = {}  # reason -> where it was first seen ("line 12")
        self.first_ts = math.inf  # occurred_at span of the valid events, epoch seconds
        self.last_ts = -math.inf
        self.matches: dict[str, int] = dict.fromkeys(ids, 0)  # events each rule matched
        self.owned: dict[str, int] = dict.fromkeys(ids, 0)  # events each rule owned: one task each
        self.tasks: dict[tuple[str, str], int] = {}  # (rule, owner) -> tasks
        self.alerts: dict[tuple[int, str, str], int] = {}  # (UTC hour since epoch, rule, channel) -> alerts
        self.held: dict[tuple[str, str], int] = {}  # (policy reason, rule) -> alerts not posted
        self.samples: dict[str, list[Sample]] = {rule_id: [] for rule_id in ids}

    def feed(self, values: Sequence[bytes | None], where: Callable[[int], str], skip_blank: bool = True) -> None:
        """Replay one batch. `where(i)` names the i-th message ("line 12"); called only for bad ones.

        `skip_blank`: a blank line of a file is not an event; an empty Kafka message is (invalid).

        The hot path: locals only, no per-event objects beyond the event and its match.
        """
        model = FeedbackEvent.model_validate_json
        evaluate = self.rules.evaluate_data
        policy, route, static = self.policy, self.route, self.static
        matches, owned, tasks, alerts, held = self.matches, self.owned, self.tasks, self.alerts, self.held
        show, samples = self.samples_per_rule, self.samples
        future_limit = self.future_limit
        low, high = self.first_ts, self.last_ts
        valid = blank = 0
        for index, value in enumerate(values):
            raw = value if value is not None else b""
            data = event_data(raw)
            if data is None:
                try:
                    data = model(raw).model_dump()  # never expected: the model accepted what event_data refused
                except ValidationError as exc:
                    if skip_blank and value is not None and value.strip() == b"":
                        blank += 1
                        continue
                    self._count_invalid(describe_validation_error(exc, value)[0], index, where)
                    continue
            ts = data["occurred_at"].timestamp()
            if ts > future_limit:
                self._count_invalid(FUTURE_REASON, index, where)
                continue
            valid += 1
            if ts < low:
                low = ts
            if ts > high:
                high = ts
            match = evaluate(data)
            if match is None:
                continue
            rule = match.owner
            rule_id = rule.id
            for matched in match.rules:
                matches[matched.id] += 1
            owned[rule_id] += 1
            keep = show and len(samples[rule_id]) < show
            event = model(raw) if keep or policy is not None or route is not None else None  # the hooks take the model
            # (`event is None` only when there is no hook and no sample to keep: the checks tell mypy so)
            channel, owner = static[rule_id] if route is None or event is None else route(event, rule)
            key = (rule_id, owner)
            reason = None if policy is None or event is None else policy(event, match, channel)
            if reason is None or not reason.startswith("throttled"):  # a throttled match joins the open task
                tasks[key] = tasks.get(key, 0) + 1
            if reason is not None:
                held_key = (reason, rule_id)
                held[held_key] = held.get(held_key, 0) + 1
                continue
            alert_key = (int(ts // 3600), rule_id, channel)
            alerts[alert_key] = alerts.get(alert_key, 0) + 1
            if keep and event is not None:
                samples[rule_id].append(Sample(event, match, channel, owner))
        self.read += len(values) - blank
        self.blank += blank
        self.valid += valid
        self.first_ts, self.last_ts = low, high

    def empty_copy(self) -> Replay:
        """A Replay with the same rules, routes, policy and clock, and no counts yet."""
        copy = Replay(self.rules, policy=self.policy, route=self.route, samples_per_rule=self.samples_per_rule)
        copy.static, copy.future_limit = self.static, self.future_limit
        return copy

    @property
    def invalid_count(self) -> int:
        return sum(self.invalid.values())

    def export(self) -> dict[str, Any]:
        """The counters as plain picklable data: a parallel part's result (see parallel.py)."""
        samples = {
            rule_id: [(s.event, s.match.owner.id, s.match.rule_ids, s.channel, s.owner) for s in kept]
            for rule_id, kept in self.samples.items()
        }
        return {name: getattr(self, name) for name in _STATE} | {"samples": samples}

    def absorb(self, state: dict[str, Any]) -> None:
        """Add a later part of the input; parts must be absorbed in input order (first-seen wins)."""
        self.read += state["read"]
        self.valid += state["valid"]
        self.blank += state["blank"]
        self.invalid.update(state["invalid"])
        for reason, where in state["invalid_at"].items():
            self.invalid_at.setdefault(reason, where)
        self.first_ts = min(self.first_ts, state["first_ts"])
        self.last_ts = max(self.last_ts, state["last_ts"])
        for name in ("matches", "owned", "tasks", "alerts", "held"):
            mine: dict[Any, int] = getattr(self, name)
            for key, count in state[name].items():
                mine[key] = mine.get(key, 0) + count
        by_id = {rule.id: rule for rule in self.rules.rules}
        for rule_id, kept in state["samples"].items():
            room = self.samples_per_rule - len(self.samples[rule_id])
            for event, owner_id, rule_ids, channel, owner in kept[: max(room, 0)]:
                match = Match(owner=by_id[owner_id], rules=tuple(by_id[i] for i in rule_ids))
                self.samples[rule_id].append(Sample(event, match, channel, owner))

    def _count_invalid(self, reason: str, index: int, where: Callable[[int], str]) -> None:
        self.invalid[reason] += 1
        if reason not in self.invalid_at:
            self.invalid_at[reason] = where(index)


_STATE = ("read", "valid", "blank", "invalid", "invalid_at", "first_ts", "last_ts", "matches", "owned", "tasks", "alerts", "held")


def pick_samples(replay: Replay, count: int) -> list[Sample]:
    """`count` alerts, deterministically, spread over the rules.

    Round-robin over the rules in file order, each giving its earliest alert not yet shown:
    every rule that alerted is seen before any rule is seen twice.
    """
    queues = [list(replay.samples[rule.id]) for rule in replay.rules.rules]
    picked: list[Sample] = []
    depth = 0
    while len(picked) < count and any(len(q) > depth for q in queues):
        for queue in queues:
            if len(queue) > depth and len(picked) < count:
                picked.append(queue[depth])
        depth += 1
    return picked
