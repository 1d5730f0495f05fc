"""The backtest report: what a replay's counters mean for the people who get paged.

Kept apart from the replay loop so the loop stays a counter and the figures (per rule, day,
channel, owner, busiest hour) are plain data a test, or a future `--json`, can read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..alerting import AlertRenderer, TemplateRenderError
from ..tasks import open_task
from .replay import Replay, Sample, pick_samples

TOP_REASONS = 5
BAR_WIDTH = 30
MAX_DAY_ROWS = 62  # a longer span is shown per week, so the report stays readable
BLOCK_LINE = 160  # characters of a block shown in a sample


@dataclass(frozen=True)
class RuleFigures:
    id: str
    severity: str
    matches: int  # events the rule matched
    alerts: int  # events it owned and alerted on
    tasks: int  # events it owned (one task each); alerts + held
    held: int  # owned, but a policy held the alert back
    channels: tuple[str, ...]
    owners: tuple[str, ...]

    @property
    def outranked(self) -> int:
        """Matched, but a higher-severity rule (or an earlier one of the same) owned the event."""
        return self.matches - self.tasks


@dataclass(frozen=True)
class Summary:
    read: int
    valid: int
    invalid: int
    blank: int
    reasons: list[tuple[str, int, str]]  # (reason, count, first seen at), most frequent first
    first: datetime | None  # occurred_at span of the valid events
    last: datetime | None
    rules: list[RuleFigures]  # file order
    tasks: int
    alerts: int
    held: dict[str, int]  # policy reason -> alerts held back
    per_day: dict[date, int]  # every UTC day of the span, zeros included
    per_channel: dict[str, int]  # busiest first
    per_owner: dict[str, int]  # tasks, busiest first
    busiest_hour: tuple[datetime, int] | None  # (start of the UTC hour, alerts)
    metric_rules: int = 0  # not replayed: they fire on rolling figures, not on events


def summarize(replay: Replay) -> Summary:
    """Fold the replay's counters into the report's figures."""
    per_hour: Counter[int] = Counter()
    per_channel: Counter[str] = Counter()
    alerts_by_rule: Counter[str] = Counter()
    channels_by_rule: dict[str, set[str]] = {}
    for (hour, rule_id, channel), count in replay.alerts.items():
        per_hour[hour] += count
        per_channel[channel] += count
        alerts_by_rule[rule_id] += count
        channels_by_rule.setdefault(rule_id, set()).add(channel)
    per_owner: Counter[str] = Counter()
    owners_by_rule: dict[str, set[str]] = {}
    for (rule_id, owner), count in replay.tasks.items():
        per_owner[owner] += count
        owners_by_rule.setdefault(rule_id, set()).add(owner)
    held_by_rule: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for (reason, rule_id), count in replay.held.items():
        held_by_rule[rule_id] += count
        held[reason] += count

    rules = []
    for rule in replay.rules.rules:
        channel, owner = replay.static[rule.id]
        rules.append(
            RuleFigures(
                id=rule.id,
                severity=rule.severity,
                matches=replay.matches[rule.id],
                alerts=alerts_by_rule[rule.id],
                tasks=replay.owned[rule.id],
                held=held_by_rule[rule.id],
                channels=tuple(sorted(channels_by_rule.get(rule.id, {channel}))),
                owners=tuple(sorted(owners_by_rule.get(rule.id, {owner}))),
            )
        )

    first = last = None
    per_day: dict[date, int] = {}
    if replay.valid:
        first, last = _utc(replay.first_ts), _utc(replay.last_ts)
        day = first.date()
        while day <= last.date():
            per_day[day] = 0
            day += timedelta(days=1)
        for hour, count in per_hour.items():
            per_day[_utc(hour * 3600).date()] += count
    busiest = None
    if per_hour:
        hour, count = min(per_hour.items(), key=lambda item: (-item[1], item[0]))  # ties: the earliest
        busiest = (_utc(hour * 3600), count)
    return Summary(
        read=replay.read,
        valid=replay.valid,
        invalid=replay.invalid_count,
        blank=replay.blank,
        reasons=[(reason, count, replay.invalid_at[reason]) for reason, count in replay.invalid.most_common()],
        first=first,
        last=last,
        rules=rules,
        tasks=sum(replay.tasks.values()),  # a throttled answer joins an open task instead
        alerts=sum(per_hour.values()),
        held=dict(held.most_common()),
        per_day=per_day,
        per_channel=_busiest_first(per_channel),
        per_owner=_busiest_first(per_owner),
        busiest_hour=busiest,
        metric_rules=len(replay.rules.metric_rules),
    )


def format_report(summary: Summary, source: str, rules_label: str, elapsed_s: float | None = None) -> str:
    """The report as printed by `feedback-worker rules test`."""
    s = summary
    out: list[str] = []
    add = out.append
    add(f"Backtest of {rules_label}: {len(s.rules)} rules, on {source}")
    if s.metric_rules:
        add(f"  ({s.metric_rules} metric rule(s) not replayed: they fire on rolling figures, not on single events)")
    add("")
    rate = ""
    if elapsed_s:
        rate = f" in {elapsed_s:.1f} s" + (f" ({s.read / elapsed_s:,.0f} events/s)" if s.read >= 10_000 else "")
    add(f"Events    {s.read:>12,} read{rate}")
    add(f"  valid   {s.valid:>12,}")
    add(f"  invalid {s.invalid:>12,}" + ("  (the worker sends these to the DLQ)" if s.invalid else ""))
    for reason, count, where in s.reasons[:TOP_REASONS]:
        add(f"    {count:>10,}  {reason}  (first at {where})")
    if len(s.reasons) > TOP_REASONS:
        rest = sum(count for _, count, _ in s.reasons[TOP_REASONS:])
        add(f"    {rest:>10,}  ({len(s.reasons) - TOP_REASONS} other reasons)")
    if s.blank:
        add(f"  ({s.blank:,} blank lines skipped)")
    if s.first is not None and s.last is not None:
        days = (s.last - s.first).total_seconds() / 86400
        add(f"  span    {_when(s.first)} → {_when(s.last)} ({days:,.1f} days, by occurred_at)")
    add("")

    share = f" ({s.alerts / s.valid:.1%} of valid events)" if s.valid else ""
    add(f"Alerts    {s.alerts:>12,}{share}")
    add(f"Tasks     {s.tasks:>12,}  (one per event a rule owns; a throttled answer joins the open task)")
    for reason, count in s.held.items():
        add(f"  held    {count:>12,}  by the alert policy: {reason}")
    add("")
    add(_rule_table(s))
    add("")

    weekly = len(s.per_day) > MAX_DAY_ROWS
    add("Alerts per week (UTC, from Monday)" if weekly else "Alerts per day (UTC)")
    rows = _weeks(s.per_day) if weekly else {day.isoformat() + " " + day.strftime("%a"): n for day, n in s.per_day.items()}
    add(_bars(rows) if rows else "  (no events)")
    add("")
    if s.busiest_hour is not None:
        start, count = s.busiest_hour
        add(f"Busiest hour: {start:%Y-%m-%d %H:00}–{start + timedelta(hours=1):%H:00} UTC, {count:,} alerts")
        add("")
    add("Alerts per channel")
    add(_table(s.per_channel) if s.per_channel else "  (none)")
    add("")
    add("Tasks per owner")
    add(_table(s.per_owner) if s.per_owner else "  (none)")
    return "\n".join(out)


def render_samples(replay: Replay, renderer: AlertRenderer, count: int) -> str:
    """`count` alerts rendered as the worker would post them: the text fallback and the blocks.

    The task opens at the event's time, so due times read as they would have then.
    """
    picked = pick_samples(replay, count)
    total = sum(replay.alerts.values())
    out = [f"Sample alerts ({len(picked)} of {total:,}; the earliest of each rule in turn)"]
    for number, sample in enumerate(picked, start=1):
        out.append("")
        out.extend(_render_one(number, len(picked), sample, renderer))
    return "\n".join(out)


def _render_one(number: int, of: int, sample: Sample, renderer: AlertRenderer) -> list[str]:
    event, match = sample.event, sample.match
    rule = match.owner
    head = f"── {number}/{of} · {rule.id} → {sample.channel} · event {event.event_id} · {_when(event.occurred_at)} ──"
    task = open_task(event, rule.id, match.rule_ids, rule.severity, rule.followup, event.occurred_at)
    task = task.model_copy(update={"owner": sample.owner})
    try:
        alert = renderer.render(rule.alert.template, sample.channel, event, match, task)
    except TemplateRenderError as err:
        return [head, f"  cannot render: {err}"]
    lines = [head, f"text:   {_one_line(alert.text)}", "blocks:"]
    lines += [f"  {block.get('type', '?'):<8} {_one_line(_block_text(block))}" for block in alert.blocks]
    return lines


def _block_text(block: dict[str, Any]) -> str:
    """The visible text of a block; blocks of other shapes as compact JSON."""
    parts: list[str] = []
    if isinstance(block.get("text"), dict):
        parts.append(str(block["text"].get("text", "")))
    for key in ("fields", "elements"):
        for item in block.get(key) or []:
            if isinstance(item, dict) and "text" in item:
                parts.append(str(item["text"].get("text", "")) if isinstance(item["text"], dict) else str(item["text"]))
    return " | ".join(parts) if parts else json.dumps(block, ensure_ascii=False, separators=(",", ":"))


def _one_line(text: str) -> str:
    flat = text.replace("\r", "").replace("\n", " ⏎ ")
    return flat if len(flat) <= BLOCK_LINE else flat[: BLOCK_LINE - 1] + "…"


def _rule_table(s: Summary) -> str:
    held = any(rule.held for rule in s.rules)
    header = ["rule", "severity", "matches", "alerts", *(["held"] if held else []), "outranked", "channel", "owner"]
    rows = [header]
    for r in s.rules:
        row = [r.id, r.severity, f"{r.matches:,}", f"{r.alerts:,}", *([f"{r.held:,}"] if held else []), f"{r.outranked:,}"]
        rows.append(row + [", ".join(r.channels), ", ".join(r.owners)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    numeric = set(range(2, len(header) - 2))
    lines = [
        "  " + "  ".join(c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]
    never = [r.id for r in s.rules if r.matches == 0]
    shadowed = [r.id for r in s.rules if r.matches and r.tasks == 0]
    if never:
        lines.append(f"  never matched: {', '.join(never)}")
    if shadowed:
        lines.append(f"  matched but always outranked (no alert of their own): {', '.join(shadowed)}")
    lines.append("  matches: events the rule matched; alerts: events it owned (highest severity wins, ties: file order)")
    return "\n".join(lines)


def _bars(rows: dict[str, int]) -> str:
    top = max(rows.values(), default=0)
    width = max(len(label) for label in rows)
    number = max(len(f"{n:,}") for n in rows.values())
    return "\n".join(
        f"  {label:<{width}}  {n:>{number},}  {'█' * (round(n / top * BAR_WIDTH) if top else 0)}".rstrip() for label, n in rows.items()
    )


def _weeks(per_day: dict[date, int]) -> dict[str, int]:
    weeks: dict[str, int] = {}
    for day, count in per_day.items():
        monday = day - timedelta(days=day.weekday())
        weeks[monday.isoformat()] = weeks.get(monday.isoformat(), 0) + count
    return weeks


def _table(counts: dict[str, int]) -> str:
    width = max(len(name) for name in counts)
    number = max(len(f"{n:,}") for n in counts.values())
    total = sum(counts.values()) or 1
    return "\n".join(f"  {name:<{width}}  {n:>{number},}  {n / total:>6.1%}" for name, n in counts.items())


def _busiest_first(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
