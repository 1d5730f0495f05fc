"""Rising complaints in the loop (issue 22), on the in-process harness with the clock in the test's hands.

A term of unhappy comments rising in the current window is posted once per window and term; nothing before a whole
baseline of history, nothing for a replay or backfill of old answers, never a term common all along; the message
escapes customer text, names the covering themes, the count against the usual, examples and a candidate theme; a
restart restores the counts without counting a replayed answer twice.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import wait_for
from tests.harness import NOW, Harness
from tests.harness import value as metric_value
from worker.themes import build_themes

WINDOW = timedelta(minutes=1)
RULES = """
emerging:
  channel: "#cx-insights"
  window: 1m
  baseline: 10m
  min_count: 5
  min_ratio: 3
themes:
  - {id: delivery, label: Delivery}
  - {id: damaged-goods, label: Damaged goods, parent: delivery, terms: {en: [broken, damaged]}}
  - {id: slow-app, label: Slow app, terms: {en: ["slow app", sluggish]}}
rules:
  - id: never
    when: {survey: ces, score: {gte: 5}}
    alert: {channel: "#cx-alerts"}
"""
#: Said every minute, all along: never rising.
USUAL = ["The app is sluggish again", "Support never answered my email", "The app is sluggish", "Nobody answered my email"]
ZIPPER = [
    "The zipper broke after two days",
    "Zipper stuck, cannot close the bag",
    "my zipper came off on day one",
    "The zipper is stuck again!",
    "zipper broke, jacket useless",
    "Zipper teeth bent out of shape",
]
START = NOW  # the harness's clock stands at NOW, a whole minute: the current window is [NOW, NOW + 1m)


def answer(comment: str, at: datetime, score: int = 2, survey: str = "csat", customer: str | None = None) -> bytes:
    """An unhappy answer (CSAT 2) with `comment`, at `at`."""
    return json.dumps(
        {
            "event_id": f"e-{uuid.uuid4().hex[:10]}",
            "occurred_at": at.isoformat(),
            "survey": survey,
            "score": score,
            "language": "en",
            "comment": comment,
            "customer": {"id": customer or f"c-{uuid.uuid4().hex[:6]}", "segment": "smb", "monthly_value": 50.0},
        }
    ).encode()


def start(tmp_path: Path, rules: str = RULES) -> Harness:
    path = tmp_path / f"rules-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(rules)
    return Harness(rules_path=path).start()


def send(harness: Harness, *values: bytes) -> None:
    for value in values:
        harness.send(value, key=json.loads(value)["customer"]["id"].encode())


def history(harness: Harness, minutes: int = 10, before: datetime = START) -> None:
    """The usual comments, four a minute, in each of the `minutes` windows before `before`."""
    for minute in range(1, minutes + 1):
        at = before - minute * WINDOW + timedelta(seconds=5)
        send(harness, *(answer(comment, at + timedelta(seconds=i)) for i, comment in enumerate(USUAL)))


def posts(harness: Harness) -> dict[str, dict[str, Any]]:
    """Slot key → the rising-complaint message as owed (its OWED record carries it)."""
    found = {}
    for record in harness.records("state"):
        key = record["key"].decode()
        if key.startswith("post|fb|emerging:") and record.get("message"):
            found.setdefault(key.removeprefix("post|fb|"), record["message"])
    return found


def judged(harness: Harness, term: str, count: int, start: datetime = START) -> Any:
    """Wait until the judge has looked at the window starting `start` with `count` comments having `term`."""

    def seen() -> Any:
        verdict = harness.worker.emerging.verdict if harness.worker.emerging is not None else None
        ok = verdict is not None and verdict.start == int(start.timestamp()) and verdict.counts.get(term) == count
        return verdict if ok else None

    return wait_for(seen, 15, f"the judge to see {count} × {term!r}")


def text_of(message: dict[str, Any]) -> str:
    """Every text of a message's blocks, as a reader sees them (and the fallback text)."""
    parts = [message["text"]]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                parts.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(message["blocks"])
    return "\n".join(parts)


def test_a_rising_term_is_posted_once_per_window_and_a_term_common_all_along_never_rises(tmp_path: Path) -> None:
    harness = start(tmp_path)
    try:
        history(harness)
        now = [answer(comment, START + timedelta(seconds=2 + i)) for i, comment in enumerate(USUAL * 2)]  # twice as usual
        send(harness, *now, *(answer(comment, START + timedelta(seconds=10 + i)) for i, comment in enumerate(ZIPPER[:5])))
        wait_for(lambda: len(posts(harness)) == 1, 15, "the rising complaint")
        ((slot, message),) = posts(harness).items()
        assert slot == f"emerging:{int(START.timestamp())}|60|zipper"
        assert "zipper" in message["text"] and "5 unhappy comments" in message["text"]
        verdict = judged(harness, "zipper", 5)
        assert verdict.ready and verdict.rising == ("zipper",)  # "sluggish" and "email" went with their usual ×2: not rising

        send(harness, answer(ZIPPER[5], START + timedelta(seconds=30)))  # more of the same window: no second post
        judged(harness, "zipper", 6)
        wait_for(lambda: harness.sink.posted, 10, "the post, once owed")
        assert len(posts(harness)) == 1 and harness.sink.posted == ["#cx-insights"]

        harness.advance(WINDOW)  # the next window: the wave again, against a baseline that now holds it once
        send(harness, *(answer(comment, START + WINDOW + timedelta(seconds=5 + i)) for i, comment in enumerate(ZIPPER)))
        wait_for(lambda: len(posts(harness)) == 2, 15, "the next window's post")
        assert f"emerging:{int((START + WINDOW).timestamp())}|60|zipper" in posts(harness)
        wait_for(lambda: len(harness.sink.posted) >= 2, 10, "the post, once owed")  # the OWED record is written first
        assert harness.sink.posted == ["#cx-insights"] * 2
        assert metric_value(harness.scrape(), "feedback_worker_rising_complaints_total") == 2  # what ops graph
    finally:
        harness.finish()


def test_nothing_rises_before_a_whole_baseline_of_history(tmp_path: Path) -> None:
    harness = start(tmp_path)
    try:
        history(harness, minutes=9)  # one minute short of the baseline
        send(harness, *(answer(comment, START + timedelta(seconds=5 + i)) for i, comment in enumerate(ZIPPER)))
        verdict = judged(harness, "zipper", 6)
        assert not verdict.ready and verdict.rising == () and posts(harness) == {}

        send(harness, answer(USUAL[0], START - 10 * WINDOW + timedelta(seconds=1)))  # backfilled: history is a baseline long now
        wait_for(lambda: len(posts(harness)) == 1, 15, "the rising complaint, once the history is there")
    finally:
        harness.finish()


def test_a_replay_or_backfill_of_old_answers_raises_nothing(tmp_path: Path) -> None:
    harness = start(tmp_path)
    try:
        history(harness, minutes=20, before=START - 5 * WINDOW)
        wave = START - 7 * WINDOW  # a big wave, in a past window
        send(harness, *(answer(comment, wave + timedelta(seconds=i)) for i, comment in enumerate(ZIPPER * 3)))
        send(harness, *(answer(comment, START + timedelta(seconds=5 + i)) for i, comment in enumerate(USUAL)))  # the usual, now
        verdict = judged(harness, "sluggish", 2)
        assert verdict.ready and verdict.rising == ()
        assert harness.worker.emerging is not None
        assert harness.worker.emerging.state.totals(60, int(wave.timestamp())).counts["zipper"] == 18  # counted, in its window
        assert posts(harness) == {} and harness.sink.posted == []

        harness.advance(3 * WINDOW)  # windows after the wave: it is their baseline now, and still nothing rises
        send(harness, *(answer(comment, START + 3 * WINDOW + timedelta(seconds=i)) for i, comment in enumerate(USUAL)))
        verdict = judged(harness, "sluggish", 2, START + 3 * WINDOW)
        assert verdict.ready and verdict.rising == () and posts(harness) == {}
    finally:
        harness.finish()


def test_the_message_escapes_customer_text_and_offers_a_theme_to_paste(tmp_path: Path) -> None:
    harness = start(tmp_path)
    try:
        history(harness)
        nasty = [
            'Zipper broke <!channel> <@U1> {{ 7*7 }} "quoted"\nsecond line',
            "zipper broken on arrival, and the whole jacket is useless now",  # damaged-goods covers "broken", not "zipper"
            "zipper jammed, broken too: the second one this winter, honestly",
            "zipper <https://evil.example|click here> jammed",
            "Zipper *bold* _it_ ~gone~ `code`",
        ]
        send(harness, *(answer(comment, START + timedelta(seconds=5 + i)) for i, comment in enumerate(nasty)))
        wait_for(lambda: len(posts(harness)) == 1, 15, "the rising complaint")
        (message,) = posts(harness).values()
        text = text_of(message)
        raw = json.dumps(message)
        assert "<!channel>" not in raw and "<@U1>" not in raw and "<https://evil" not in raw  # never a ping or a link
        assert "&lt;!channel&gt;" in text and "&lt;@U1&gt;" in text
        assert "{{ 7*7 }}" in text and "49" not in text  # customer text is never a template
        assert "no theme covers it" in text  # "zipper" is no theme's word
        assert "5 unhappy comments" in message["text"] and "usually 0.1" in message["text"]
        examples = [
            b["text"]["text"] for b in message["blocks"] if b.get("type") == "section" and b.get("text", {}).get("type") == "plain_text"
        ]
        assert len(examples) == 3  # the shortest three with the term
        assert examples[2] == '“Zipper broke &lt;!channel&gt; &lt;@U1&gt; {{ 7*7 }} "quoted"\nsecond line”'  # as plain text, inert
        assert "zipper &lt;https://evil.example|click here&gt; jammed" in examples[1]
        yaml_text = next(e["text"] for b in message["blocks"] if b.get("type") == "rich_text" for p in b["elements"] for e in p["elements"])
        candidate = yaml.safe_load(yaml_text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
        themes = build_themes([candidate["themes"]])
        (theme,) = themes
        assert theme.id == "zipper" and "zipper" in theme.terms["en"]
        assert message["metadata"]["event_type"] == "feedback_rising_complaint"
    finally:
        harness.finish()


def test_the_covering_themes_are_named(tmp_path: Path) -> None:
    harness = start(tmp_path)
    try:
        history(harness)
        damaged = ["Box damaged", "damaged parcel", "Arrived damaged", "damaged screen", "Lamp damaged", "damaged corners"]
        send(harness, *(answer(comment, START + timedelta(seconds=5 + n)) for n, comment in enumerate(damaged)))
        wait_for(lambda: len(posts(harness)) == 1, 15, "the rising complaint")
        (message,) = posts(harness).values()
        assert "Delivery › Damaged goods" in text_of(message)
        assert not any(b.get("type") == "rich_text" for b in message["blocks"])  # a theme covers it: no candidate
    finally:
        harness.finish()


def test_a_restart_restores_the_counts_and_a_replay_below_the_stamp_counts_nothing(tmp_path: Path) -> None:
    first = start(tmp_path)
    fed = [answer(comment, START - 2 * WINDOW + timedelta(seconds=i)) for i, comment in enumerate(USUAL)]
    fed += [answer(comment, START + timedelta(seconds=5 + i)) for i, comment in enumerate(ZIPPER[:3])]
    try:
        send(first, *fed)
        judged(first, "zipper", 3)
        wait_for(lambda: first.consumer.all_committed("fb"), 10, "every answer committed")
    finally:
        first.finish()
    assert any(r["key"].startswith(b"terms|fb|") for r in first.records("state")), "the counts are in the state topic"

    again = Harness(rules_path=first.settings.rules_path)  # a restart: the state topic as the first run left it
    for key, value in first.producer.records["state"]:
        again.producer.routes["state"].append("state", key, value)
    send(again, *fed)  # the input again from offset 0 (nothing committed is skipped by the fake): replayed below every stamp
    again.start()
    try:
        send(again, *(answer(comment, START + timedelta(seconds=20 + i)) for i, comment in enumerate(ZIPPER[3:])))
        judged(again, "zipper", 6)  # 3 restored + 3 new; the 3 replayed are not counted again
        assert again.worker.emerging is not None
        assert again.worker.emerging.state.totals(60, int((START - 2 * WINDOW).timestamp())).counts["sluggish"] == 2
    finally:
        again.finish()
