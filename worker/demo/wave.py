"""The demo's rising complaint (issue 22): a complaint nobody wrote a theme for, found by the worker and posted once.

The shipped rules judge a day against the 28 days before it; the demo has minutes, so its copy of the rules judges
WINDOW against the BASELINE before it (`short_window`). Then `provoke` sends what makes one term rise: the usual
comments, a few per window over the baseline (the history the rule needs before it judges anything), and a wave of
unhappy comments about a broken zipper, in several wordings, in the current window. The worker counts them, its
judge sees "zipper" far above its usual count and posts the rising complaint to #cx-insights, once; `provoke` waits
for that message (its OWED record in the state topic carries it) and returns it as text to print.

Every answer here is a CSAT 3 from a small customer with a comment no rule alerts on, so the wave adds no tasks.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, TopicPartition

from ..broker import make_producer, state_topic
from ..config import Settings
from ..delivery import For, parse_slot

WINDOW = timedelta(minutes=10)
BASELINE = timedelta(minutes=100)
MARGIN = timedelta(seconds=30)  # less than this left of the current window: the wave waits for the next one
USUAL = ["Checkout page was confusing", "The app is slow to load", "Prices went up again", "Could not find the size chart"]
WAVE = [
    "The zipper broke after two days",
    "Zipper stuck halfway, cannot close the jacket",
    "my zipper came off on day one",
    "Zipper teeth bent out of shape after one wash",
    "The zipper keeps jamming",
    "zipper pull snapped off",
    "Zipper split open on the first wear",
    "A zipper that jams is no zipper",
]


def short_window(folder: Path) -> None:
    """In the rules copy at `folder`, judge WINDOW against BASELINE (the shipped 1d and 28d are too long to watch)."""
    for file in sorted(folder.glob("*.y*ml")):
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
        if isinstance(document, dict) and isinstance(document.get("emerging"), dict):
            document["emerging"] |= {"window": f"{WINDOW.seconds // 60}m", "baseline": f"{BASELINE.seconds // 60}m"}
            file.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")


def answer(n: int, comment: str, at: datetime) -> tuple[bytes, bytes]:
    customer = f"c-wave-{n % 12:02d}"
    event = {
        "event_id": f"wave-{n:04d}",
        "occurred_at": at.isoformat(),
        "survey": "csat",
        "score": 3,
        "language": "en",
        "comment": comment,
        "customer": {"id": customer, "name": "Kohvik Kass", "segment": "smb", "monthly_value": 60.0},
    }
    return customer.encode(), json.dumps(event).encode()


def history(start: datetime) -> list[tuple[bytes, bytes]]:
    """The usual comments, two per window over the baseline before the window starting at `start`, and a few in it."""
    windows = int(BASELINE / WINDOW)
    answers = [
        answer(n, USUAL[n % len(USUAL)], start - (w + 1) * WINDOW + (n % 2 + 1) * WINDOW / 3)
        for w in range(windows)
        for n in (2 * w, 2 * w + 1)
    ]
    return answers + [answer(100 + n, comment, start + timedelta(seconds=n)) for n, comment in enumerate(USUAL[:2])]


def provoke(settings: Settings, say: Callable[[str], None], timeout_s: float = 30.0) -> tuple[int, str | None]:
    """Send the history and the wave, wait for the rising complaint; return how many answers were sent (the metrics
    count them too) and the message as text (None: not within timeout_s)."""
    now = datetime.now(UTC)
    size = int(WINDOW.total_seconds())
    start = datetime.fromtimestamp(now.timestamp() // size * size, UTC)
    if start + WINDOW - now < MARGIN:  # the wave and its judging in one window
        time.sleep((start + WINDOW - now).total_seconds() + 1)
        now, start = datetime.now(UTC), start + WINDOW
    answers = history(start) + [answer(200 + n, comment, now) for n, comment in enumerate(WAVE)]
    producer = make_producer(settings)
    for key, value in answers:
        producer.send(settings.feedback_topic, key=key, value=value)
    producer.flush()
    producer.close()
    say(
        f"  sent {len(answers) - len(WAVE)} answers with the usual comments over the last {int(BASELINE / WINDOW)} windows of "
        f"{WINDOW.seconds // 60} minutes, then {len(WAVE)} unhappy comments about a zipper nobody wrote a theme for"
    )
    message = wait_for_message(settings, timeout_s)
    return len(answers), None if message is None else as_text(message)


def wait_for_message(settings: Settings, timeout_s: float) -> dict[str, Any] | None:
    """The first rising complaint owed to Slack (its OWED record carries the message), read from the state topic."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=100)
    tp = TopicPartition(state_topic(settings), 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    prefix = f"post|{settings.feedback_topic}|"
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    key = record.key.decode()
                    if record.value and key.startswith(prefix) and parse_slot(key.removeprefix(prefix)).stands_for is For.EMERGING:
                        message = json.loads(record.value).get("message")
                        if message:
                            return dict(message)
        return None
    finally:
        consumer.close()


def as_text(message: dict[str, Any]) -> str:
    """A Slack message as a terminal shows it: each block's text, the fields side by side, the preformatted YAML as is."""
    lines: list[str] = []
    for block in message.get("blocks", []):
        kind = block.get("type")
        if kind in ("header", "section") and "text" in block:
            lines.append(block["text"]["text"])
        if kind == "section":
            lines += [field["text"].replace("\n", ": ", 1) for field in block.get("fields", [])]
        if kind == "rich_text":
            lines += ["", *(e["text"].rstrip("\n") for part in block["elements"] for e in part["elements"])]
    return "\n".join("  " + html.unescape(line).replace("*", "") if line else "" for text in lines for line in text.split("\n"))
