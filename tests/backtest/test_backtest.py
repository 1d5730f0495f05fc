"""`feedback-worker rules test`: the backtest report, checked against figures worked out by hand.

EVENTS below are eight valid answers and five bad lines, chosen so every figure of the
report can be counted on paper (see EXPECTED): a tie in severity (file order wins), a
critical rule outranking two others, a rule without a channel, a rule that never matches,
one that is always outranked, and offsets that move an answer to another UTC day.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.conftest import committed, produce
from worker.backtest import (
    FUTURE_REASON,
    IDLE_STOP_S,
    Progress,
    Replay,
    SourceUnavailable,
    format_report,
    pick_samples,
    replay_file,
    replay_topic,
    summarize,
)
from worker.backtest.parallel import replay_file_parallel, split
from worker.cli import EXIT_OK, EXIT_USAGE
from worker.demo import FeedbackGenerator
from worker.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 7, 1, tzinfo=UTC).timestamp()  # for in-process replays: the events are all before it

RULES = """
rules:
  - id: detractor
    description: NPS detractor
    when: {survey: nps, score: {lte: 6}}
    severity: high
    followup: {owner: cx-oncall}
    alert: {channel: "#cx-alerts"}
  - id: enterprise
    description: Unhappy enterprise customer
    when:
      customer.segment: enterprise
      any: [{survey: nps, score: {lte: 6}}, {survey: csat, score: {lte: 2}}]
    severity: critical
    followup: {owner: enterprise-cs}
    alert: {channel: "#enterprise"}
  - id: low-csat
    when: {survey: csat, score: {lte: 2}}
    severity: medium
    followup: {owner: support-leads}
  - id: refund-words
    when: {comment: {contains_any: [refund]}}
    severity: high
    followup: {owner: retention}
    alert: {channel: "#cx-retention"}
  - id: never
    when: {survey: ces, score: {gte: 5}}
    severity: low
"""

SMB = {"id": "c-1", "name": "Purrfect Prints", "segment": "smb", "monthly_value": 100.0}
ENT = {"id": "c-2", "name": "Atlas Freight", "segment": "enterprise", "monthly_value": 25000.0}
HOSTILE = "<!channel> refund now {{ 7*7 }}"


def answer(event_id: str, at: str, survey: str, score: int, customer: dict, comment: str | None = None) -> bytes:
    event = {"event_id": event_id, "occurred_at": at, "survey": survey, "score": score, "customer": customer}
    if comment is not None:
        event["comment"] = comment
    return json.dumps(event).encode()


EVENTS: list[bytes] = [
    answer("e1", "2025-06-01T09:15:00+00:00", "nps", 3, SMB, "late again"),  # detractor
    answer("e2", "2025-06-01T09:40:00+00:00", "nps", 2, SMB, "I want a refund"),  # detractor + refund-words: tie, file order
    b"this is not json",
    answer("e3", "2025-06-01T09:55:00+00:00", "csat", 1, ENT),  # enterprise (critical) + low-csat
    answer("e4", "2025-06-01T14:00:00+00:00", "nps", 10, SMB),  # nothing
    answer("bad1", "2025-06-01T15:00:00+00:00", "nps", 11, SMB),
    b"",  # a blank line: skipped, not an event
    answer("e5", "2025-06-02T10:05:00+02:00", "csat", 2, SMB),  # 08:05 UTC, low-csat, no channel of its own
    json.dumps({"event_id": "bad2", "occurred_at": "2025-06-02T10:00:00+00:00", "survey": "nps", "score": 5}).encode(),
    answer("e6", "2025-06-02T23:30:00-02:00", "nps", 6, ENT, HOSTILE),  # 2025-06-03 01:30 UTC: enterprise + detractor + refund
    answer("bad3", "2025-06-02T12:00:00+00:00", "nps", 11, SMB),
    answer("e7", "2025-06-03T01:10:00+00:00", "nps", 5, SMB),  # detractor
    answer("e8", "2025-06-03T12:00:00+00:00", "ces", 4, SMB),  # nothing ("never" needs 5)
    answer("future", "2999-01-01T00:00:00+00:00", "nps", 0, SMB),  # the worker refuses it: DLQ
]

EXPECTED = {
    "read": 13,
    "valid": 8,
    "invalid": 5,
    "blank": 1,
    "reasons": [
        ("score: 11 is outside the nps range 0-10", 2, "line 6"),
        ("not valid JSON: expected ident at line 1 column 2", 1, "line 3"),
        ("customer: Field required", 1, "line 9"),
        (FUTURE_REASON, 1, "line 14"),
    ],
    # rule: (matches, alerts, outranked)
    "rules": {"detractor": (4, 3, 1), "enterprise": (2, 2, 0), "low-csat": (2, 1, 1), "refund-words": (2, 0, 2), "never": (0, 0, 0)},
    "per_day": {date(2025, 6, 1): 3, date(2025, 6, 2): 1, date(2025, 6, 3): 2},
    "per_channel": {"#cx-alerts": 3, "#enterprise": 2, "(default channel)": 1},
    "per_owner": {"cx-oncall": 3, "enterprise-cs": 2, "support-leads": 1},
    "busiest_hour": (datetime(2025, 6, 1, 9, tzinfo=UTC), 3),
}


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return path


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "history.jsonl"
    path.write_bytes(b"\n".join(EVENTS) + b"\n")
    return path


def backtest(*args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m worker rules test ...` from the repo root, without worker settings from the environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLACK_", "RULES_", "TEMPLATES_"))}
    return subprocess.run(
        [sys.executable, "-m", "worker", "rules", "test", *map(str, args)],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_report_text(out: str, default_channel: str = "(default channel)", from_file: bool = True) -> None:
    """Every figure of EXPECTED, as printed. From a topic: no blank lines, places are partition and offset."""
    assert re.search(r"^Events +13 read", out, re.M), out
    assert re.search(r"^  valid +8$", out, re.M) and re.search(r"^  invalid +5 ", out, re.M)
    for reason, count, where in EXPECTED["reasons"]:
        where = re.escape(where) if from_file else r"partition \d offset \d+"
        assert re.search(rf"^ +{count}  {re.escape(reason)}  \(first at {where}\)$", out, re.M), reason
    assert ("(1 blank lines skipped)" in out) == from_file
    assert "span    2025-06-01 09:15 UTC → 2025-06-03 12:00 UTC (2.1 days, by occurred_at)" in out
    assert re.search(r"^Alerts +6 \(75\.0% of valid events\)$", out, re.M)
    assert re.search(r"^Tasks +6 ", out, re.M)
    for rule, (matches, alerts, outranked) in EXPECTED["rules"].items():
        assert re.search(rf"^  {re.escape(rule)} +\w+ +{matches} +{alerts} +{outranked} ", out, re.M), rule
    assert "never matched: never" in out
    assert "matched but always outranked (no alert of their own): refund-words" in out
    days = re.findall(r"^  (2025-06-\d\d) \w\w\w +(\d+)", out, re.M)
    assert [(d, int(n)) for d, n in days] == [(d.isoformat(), n) for d, n in EXPECTED["per_day"].items()]
    assert "Busiest hour: 2025-06-01 09:00–10:00 UTC, 3 alerts" in out
    channels = out.split("Alerts per channel\n")[1].split("\n\n")[0]
    expected = {(default_channel if c == "(default channel)" else c): n for c, n in EXPECTED["per_channel"].items()}
    assert {c: int(n) for c, n in re.findall(r"^  (\S.*?) +(\d+) +[\d.]+%$", channels, re.M)} == expected
    owners = out.split("Tasks per owner\n")[1]
    assert [(o, int(n)) for o, n in re.findall(r"^  (\S+) +(\d+) +[\d.]+%$", owners, re.M)] == list(EXPECTED["per_owner"].items())


def test_the_figures_match_the_hand_count(rules_file: Path, events_file: Path) -> None:
    replay = Replay(load_rules(rules_file), now=datetime(2025, 7, 1, tzinfo=UTC).timestamp())
    replay_file(events_file, replay)
    s = summarize(replay)
    assert (s.read, s.valid, s.invalid, s.blank) == (EXPECTED["read"], EXPECTED["valid"], EXPECTED["invalid"], EXPECTED["blank"])
    assert s.reasons == EXPECTED["reasons"]
    assert (s.first, s.last) == (datetime(2025, 6, 1, 9, 15, tzinfo=UTC), datetime(2025, 6, 3, 12, tzinfo=UTC))
    assert {r.id: (r.matches, r.alerts, r.outranked) for r in s.rules} == EXPECTED["rules"]
    assert (s.alerts, s.tasks, s.held) == (6, 6, {})
    assert s.per_day == EXPECTED["per_day"]
    assert s.per_channel == EXPECTED["per_channel"]
    assert list(s.per_owner.items()) == list(EXPECTED["per_owner"].items())  # busiest first
    assert s.busiest_hour == EXPECTED["busiest_hour"]
    check_report_text(format_report(s, "test", str(rules_file)))


def test_the_cli_prints_the_same_figures_and_exits_0(rules_file: Path, events_file: Path) -> None:
    result = backtest(rules_file, "--events", events_file, "--templates", ROOT / "templates")
    assert result.returncode == EXIT_OK == 0, result.stderr
    assert result.stderr == ""  # a small input: no progress output
    check_report_text(result.stdout)
    assert "Sample alerts" not in result.stdout  # nothing is rendered without --show


def test_slack_default_channel_names_the_channel_of_rules_without_one(rules_file: Path, events_file: Path) -> None:
    result = backtest(rules_file, "--events", events_file, SLACK_DEFAULT_CHANNEL="#cx-default")
    assert result.returncode == 0, result.stderr
    check_report_text(result.stdout, default_channel="#cx-default")
    assert re.search(r"^  low-csat .* #cx-default +support-leads$", result.stdout, re.M)


def test_show_renders_alerts_spread_over_rules_and_escaped(rules_file: Path, events_file: Path) -> None:
    result = backtest(rules_file, "--events", events_file, "--show", "5")
    assert result.returncode == 0, result.stderr
    samples = result.stdout.split("Sample alerts (5 of 6; the earliest of each rule in turn)\n")[1]
    heads = re.findall(r"^── (\d)/5 · (\S+) → (.+?) · event (\S+) · ", samples, re.M)
    # Round-robin in file order: each rule's earliest alert, then each rule's second.
    assert heads == [
        ("1", "detractor", "#cx-alerts", "e1"),
        ("2", "enterprise", "#enterprise", "e3"),
        ("3", "low-csat", "(default channel)", "e5"),
        ("4", "detractor", "#cx-alerts", "e2"),
        ("5", "enterprise", "#enterprise", "e6"),
    ]
    hostile = samples.partition("event e6 ·")[2]
    assert "&lt;!channel&gt; refund now {{ 7*7 }}" in hostile  # escaped for Slack; the template did not run it
    assert "<!channel>" not in samples and "49" not in hostile
    assert re.search(r"^text:   :rotating_light: CRITICAL: ", hostile, re.M)
    assert re.search(r"^  header +CRITICAL · Unhappy enterprise customer$", hostile, re.M)
    assert "Matched: detractor, enterprise, refund-words · event e6" in hostile  # every match, in file order


def test_the_alert_policy_hook_holds_alerts_but_not_tasks(rules_file: Path, events_file: Path) -> None:
    """A stand-in for a future throttle: at most one alert per channel and UTC day."""
    seen: set[tuple[str, date]] = set()

    def one_per_channel_and_day(event, match, channel):  # type: ignore[no-untyped-def]
        key = (channel, event.occurred_at.astimezone(UTC).date())
        if key in seen:
            return "one per channel and day"
        seen.add(key)
        return None

    replay = Replay(load_rules(rules_file), policy=one_per_channel_and_day, now=NOW)
    replay_file(events_file, replay, jobs=2)  # a policy needs event order: replayed in one process anyway
    s = summarize(replay)
    assert s.tasks == 6 and s.alerts == 5 and s.held == {"one per channel and day": 1}  # e2: #cx-alerts again on 06-01
    assert {r.id: (r.alerts, r.held) for r in s.rules if r.tasks} == {"detractor": (2, 1), "enterprise": (2, 0), "low-csat": (1, 0)}
    assert s.per_owner["cx-oncall"] == 3 and s.per_channel["#cx-alerts"] == 2
    assert "held               1  by the alert policy: one per channel and day" in format_report(s, "test", "rules")


def test_several_processes_give_the_report_one_process_gives(rules_file: Path, tmp_path: Path) -> None:
    generator = FeedbackGenerator(seed=3, start=datetime(2025, 5, 1, tzinfo=UTC), spacing_s=60)
    lines = [json.dumps(generator.event(n)).encode() for n in range(3000)]
    lines[2500] = b'{"broken": '  # a reason first seen in the last part: its line number needs the earlier parts
    lines[400] = b""
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"\n".join(lines))  # and no newline at the end
    rules = load_rules(rules_file)
    one = Replay(rules, samples_per_rule=4, now=NOW)
    replay_file(path, one, jobs=1)
    for jobs in (2, 3, 7):
        assert [a for a, _ in split(path, path.stat().st_size, jobs)][0] == 0
        many = Replay(rules, samples_per_rule=4, now=NOW)
        replay_file_parallel(path, path.stat().st_size, many, jobs)
        assert summarize(many) == summarize(one)
        assert many.invalid_at == one.invalid_at == {"not valid JSON: EOF while parsing a value at line 1 column 11": "line 2501"}
        assert [(s.event, s.match.rule_ids) for s in pick_samples(many, 9)] == [(s.event, s.match.rule_ids) for s in pick_samples(one, 9)]
    assert one.read == 2999 and one.blank == 1


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    bar = Progress("replaying", total_bytes=1000, stream=tty, delay_s=0)
    bar.update(500, 250)
    bar.close()
    drawn, wiped = tty.getvalue().rsplit("\r", 2)[:2]  # tqdm draws the bar, then wipes it on close
    assert drawn.startswith("\rreplaying |") and "|  25% [" in drawn and "], 500 events, " in drawn and drawn.endswith(" events/s")
    assert wiped.strip() == "" and tty.getvalue().endswith("\r")
    log = io.StringIO()
    lines = Progress("reading t", stream=log, interval_s=0)
    lines.update(10)
    lines.update(20)
    lines.close()
    assert [line.split(",")[0] for line in log.getvalue().splitlines()] == ["reading t: 10 events", "reading t: 20 events"]
    quiet = io.StringIO()
    Progress("replaying", stream=quiet).update(1)  # a short run prints nothing
    assert quiet.getvalue() == ""


def test_usage_errors_exit_2_with_a_clear_message(rules_file: Path, events_file: Path, tmp_path: Path) -> None:
    missing = backtest(rules_file, "--events", tmp_path / "nope.jsonl")
    assert (missing.returncode, missing.stdout) == (EXIT_USAGE, "")
    assert missing.stderr == f"error: events file not found: {tmp_path / 'nope.jsonl'}\n"

    bad_rules = tmp_path / "bad.yaml"
    bad_rules.write_text("rules:\n  - id: typo\n    when: {score: {lesser: 3}}\n")
    broken = backtest(bad_rules, "--events", events_file)
    assert broken.returncode == EXIT_USAGE
    assert broken.stderr.splitlines()[0] == "error: 1 problem(s) in rules:"
    assert f"{bad_rules}:3: rule 'typo': when.score: unknown operator 'lesser'" in broken.stderr

    no_rules = backtest(tmp_path / "none.yaml", "--events", events_file)
    assert no_rules.returncode == EXIT_USAGE and "no such rules file or directory" in no_rules.stderr

    for args, message in [
        (("--events", events_file, "--since", "1d"), "--since and --bootstrap go with --from-topic"),
        (("--events", events_file, "--show", "-1"), "--show must be 0 or more"),
        (("--from-topic", "t", "--since", "soon"), "--since: bad duration 'soon'"),
    ]:
        result = backtest(rules_file, *args)
        assert result.returncode == EXIT_USAGE and message in result.stderr, result.stderr
    neither = backtest(rules_file)
    assert neither.returncode == EXIT_USAGE and "one of the arguments --events --from-topic is required" in neither.stderr


def commit_for_group(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Stand in for the worker: its group's committed offsets, which a backtest must not move."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    finally:
        consumer.close(autocommit=False)


def test_from_topic_reports_the_same_figures_and_leaves_the_worker_group_alone(
    kafka_bootstrap: str, topics: dict[str, str], rules_file: Path
) -> None:
    topic, group = topics["FEEDBACK_TOPIC"], topics["CONSUMER_GROUP"]
    old = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    three_days_ago = int(time.time() * 1000) - 3 * 86_400_000
    for n in range(4):  # before --since 1d: not replayed (detractors all, so a leak would show in every figure)
        old.send(topic, value=answer(f"old-{n}", "2025-06-01T09:30:00+00:00", "nps", 0, ENT), timestamp_ms=three_days_ago)
    old.flush()
    old.close()
    produce(kafka_bootstrap, topic, [(f"k{n}".encode(), value) for n, value in enumerate(EVENTS) if value])
    commit_for_group(kafka_bootstrap, group, topic, {0: 1, 1: 2, 2: 0})
    before = committed(kafka_bootstrap, group, topic)
    assert before == {0: 1, 1: 2, 2: 0}

    started = time.monotonic()
    result = backtest(
        rules_file, "--from-topic", topic, "--since", "1d", "--show", "1", KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, CONSUMER_GROUP=group
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert time.monotonic() - started < IDLE_STOP_S + 25  # it stops by itself once the topic is read
    check_report_text(result.stdout, from_file=False)
    assert f"on topic {topic} at {kafka_bootstrap}, records of the last 24h (offsets 0: " in result.stdout
    assert "── 1/1 · detractor → #cx-alerts · event e" in result.stdout
    assert committed(kafka_bootstrap, group, topic) == before

    flagged = backtest(rules_file, "--from-topic", topic, "--since", "5d", "--bootstrap", kafka_bootstrap)
    assert flagged.returncode == EXIT_OK, flagged.stderr
    assert re.search(r"^Events +17 read", flagged.stdout, re.M)  # the old four are within 5 days
    assert committed(kafka_bootstrap, group, topic) == before


def test_from_topic_stops_at_records_newer_than_its_start(kafka_bootstrap: str, topics: dict[str, str], rules_file: Path) -> None:
    topic = topics["FEEDBACK_TOPIC"]
    produce(kafka_bootstrap, topic, [(b"a", answer(f"a{n}", "2025-06-01T09:00:00+00:00", "nps", 1, SMB)) for n in range(6)])
    until_ms = int(time.time() * 1000)
    time.sleep(0.05)
    produce(kafka_bootstrap, topic, [(b"a", answer(f"b{n}", "2025-06-01T10:00:00+00:00", "nps", 1, SMB)) for n in range(5)])
    replay = Replay(load_rules(rules_file), now=NOW)
    read = replay_topic({"bootstrap_servers": [kafka_bootstrap]}, topic, until_ms - 60_000, replay, until_ms=until_ms, idle_stop_s=1)
    assert (replay.read, replay.owned["detractor"]) == (6, 6)
    assert list(read.values()) == [(0, 5)]  # one key, one partition: offsets 0-5, the 5 newer ones left alone


def test_from_topic_errors(kafka_bootstrap: str, rules_file: Path) -> None:
    missing = backtest(rules_file, "--from-topic", "no-such-topic-here", "--bootstrap", kafka_bootstrap)
    assert missing.returncode == EXIT_USAGE and missing.stderr == "error: topic 'no-such-topic-here' not found\n"
    replay = Replay(load_rules(rules_file))
    with pytest.raises(SourceUnavailable, match=r"cannot reach Kafka at 127\.0\.0\.1:1 within 1 s") as err:
        replay_topic({"bootstrap_servers": ["127.0.0.1:1"]}, "t", 0, replay, connect_timeout_s=1)
    assert not err.value.usage  # exit 1: a failure, not a typo


def test_throttle_and_group_are_applied_by_event_time(tmp_path: Path) -> None:
    from worker.backtest import GROUPED, THROTTLED, simulation_policy

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - id: detractor\n    when: {survey: nps, score: {lte: 6}}\n    alert: {channel: '#a'}\n"
        "    throttle: {key: customer.id, window: 1d}\n"
        "  - id: passive\n    when: {survey: nps, score: {gte: 7, lte: 8}}\n    alert: {channel: '#b'}\n"
        "    group: {by: [], wait: 1m, interval: 1h}\n"
    )
    start = datetime(2025, 6, 1, tzinfo=UTC)

    def line(n: int, minutes: int, score: int, customer: str) -> bytes:
        at = (start + timedelta(minutes=minutes)).isoformat()
        return json.dumps({"event_id": f"e{n}", "occurred_at": at, "survey": "nps", "score": score, "customer": {"id": customer}}).encode()

    # c-1: 3 detractor answers in a day (1 task, 1 alert) and one 2 days later (a new episode);
    # passives at 0, 0, 30 and 90 minutes: digests due at 1, 61 (interval) and 121 minutes -> 3 messages.
    events = [
        line(1, 0, 2, "c-1"),
        line(2, 60, 3, "c-1"),
        line(3, 600, 1, "c-1"),
        line(4, 2 * 24 * 60, 2, "c-1"),
        line(5, 0, 7, "c-2"),
        line(6, 0, 8, "c-3"),
        line(7, 30, 7, "c-4"),
        line(8, 90, 8, "c-5"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(events) + b"\n")
    loaded = load_rules(rules)
    replay = Replay(loaded, policy=simulation_policy(loaded), now=NOW)
    replay_file(path, replay, jobs=1)
    s = summarize(replay)
    by_rule = {r.id: (r.tasks, r.alerts) for r in s.rules}
    assert by_rule == {"detractor": (4, 2), "passive": (4, 3)}  # (owned, messages)
    assert s.tasks == 2 + 4  # throttled answers join the open task
    assert s.held == {THROTTLED: 2, GROUPED: 1}


def test_a_rule_on_comment_themes_is_backtested_with_the_comments_tagged_as_the_worker_tags_them(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "themes:\n  - id: late\n    label: Late\n    terms: {en: [late], nl: [te laat], et: [hilines]}\n"
        "rules:\n  - id: late-delivery\n    when: {comment.themes: late}\n    followup: {owner: logistics}\n"
    )
    comments = ["Arrived LATE", "De levering was te laat", "Tarne hilines", "Lately all good", "te laat", None, "On time"]
    history = tmp_path / "history.jsonl"
    with history.open("w") as out:
        for n, comment in enumerate(comments):
            event = {"event_id": f"e-{n}", "occurred_at": "2025-06-01T09:00:00+00:00", "survey": "nps", "score": 8}
            event |= {"customer": {"id": f"c-{n}"}} | ({"comment": comment} if comment else {})
            out.write(json.dumps(event) + "\n")
    replay = Replay(load_rules(rules), now=datetime(2025, 7, 1, tzinfo=UTC).timestamp())
    replay_file(history, replay)
    # "Lately" has the stem of "late" in English (Snowball's, as the worker matches); "Tarne hilines" and the bare
    # "te laat" are of no language the detector can tell, so they are matched in every language the themes use.
    assert {r.id: r.matches for r in summarize(replay).rules} == {"late-delivery": 5}
