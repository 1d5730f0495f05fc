"""Slack faults: stalled for 30 s, answering 500 for a minute, and the backlog an outage leaves.

The worker reaches the fake Slack through a fault proxy (SLACK_API_URL). In each test every event
is processed (all offsets committed), every matching answer reaches Slack exactly once (alone, as a
thread reply, or in a digest or rate-limit summary), the worker keeps running, and while it waits
for Slack it stays under MAX_CPU of one core.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import WorkerProcess, all_committed, event_bytes, produce, read_topic, wait_for
from tests.e2e.test_exactly_once import all_in_slack, appearances, assert_exactly_once, burst
from tests.fake_slack import FakeSlack, Scripted
from tests.faults.conftest import CpuMeter, Stream, hold, slack_url
from tests.faults.proxy import FaultProxy

pytestmark = pytest.mark.slow

MAX_CPU = 0.20  # of one core, while the worker waits for Slack


def alive(worker: WorkerProcess) -> None:
    assert worker.process is not None and worker.process.poll() is None, f"the worker exited:\n{worker.output()[-3000:]}"


def test_slack_stalled_for_30s_accepting_requests_and_never_answering(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    slack_proxy: FaultProxy,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    rules, messages, matching = burst(tmp_path, 1600, seed=33)
    fake_slack.delay_s = 0.5  # posts are on the wire when the stall begins: Slack has them and never answers
    worker = start_worker(
        "worker", RULES_PATH=str(rules), SLACK_API_URL=slack_url(slack_proxy), SLACK_TIMEOUT_SECONDS="3", SLACK_CONCURRENCY="8"
    )
    worker.wait_assigned()
    assert worker.process is not None
    stream = Stream(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages, rate=40).start()
    wait_for(lambda: len(fake_slack.messages) >= 40, 60, "the first alerts of the stream")

    cpu = CpuMeter(worker.process.pid)
    slack_proxy.stall()
    before = len(fake_slack.messages)
    hold(30, worker)
    share = cpu.share()
    landed = len(fake_slack.messages) - before
    slack_proxy.heal()
    print(f"\nSlack stalled 30 s: worker CPU {share:.1%} of a core; {landed} posts reached Slack during the stall")

    end = stream.end()
    wait_for(
        lambda: all_committed(kafka_bootstrap, topics, end) and all_in_slack(fake_slack, matching),
        120,
        "every offset committed after the stall and every answer in Slack",
    )
    alive(worker)
    assert share < MAX_CPU, f"the worker used {share:.0%} of a core while Slack was stalled"
    assert_exactly_once(appearances(fake_slack), matching, fake_slack)


def test_slack_answering_500_for_a_minute(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    rules, messages, matching = burst(tmp_path, 2000, seed=34)
    worker = start_worker("worker", RULES_PATH=str(rules), SLACK_TIMEOUT_SECONDS="3", SLACK_CONCURRENCY="8")
    worker.wait_assigned()
    assert worker.process is not None
    stream = Stream(kafka_bootstrap, topics["FEEDBACK_TOPIC"], messages, rate=25).start()  # 80 s of events
    wait_for(lambda: len(fake_slack.messages) >= 40, 60, "the first alerts of the stream")

    cpu = CpuMeter(worker.process.pid)
    calls = len(fake_slack.calls)
    fake_slack.fail_next(*[Scripted(status=500)] * 100_000)  # every request, whatever the method, for the minute
    hold(60, worker)
    share = cpu.share()
    fake_slack.clear_failures()
    requests = len(fake_slack.calls) - calls
    print(f"\nSlack answering 500 for 60 s: worker CPU {share:.1%} of a core; {requests} requests in the minute")

    end = stream.end()
    wait_for(
        lambda: all_committed(kafka_bootstrap, topics, end) and all_in_slack(fake_slack, matching),
        180,
        "every offset committed after the outage and every answer in Slack",
    )
    alive(worker)
    assert share < MAX_CPU, f"the worker used {share:.0%} of a core while Slack answered 500"
    assert requests < 600, f"{requests} requests in a minute of 500s: the retries do not back off"
    assert_exactly_once(appearances(fake_slack), matching, fake_slack)


RATE_RULES = """
rules:
  - id: detractor
    when: {survey: nps, score: {lte: 6}}
    alert: {channel: "#cx-alerts"}
"""


def test_a_backlog_of_10000_alerts_after_a_slack_outage_arrives_as_rate_limit_summaries(
    kafka_bootstrap: str,
    topics: dict[str, str],
    fake_slack: FakeSlack,
    slack_proxy: FaultProxy,
    start_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RATE_RULES)
    events = [
        (f"c-{n}".encode(), event_bytes(event_id=f"b-{n}", score=n % 7, customer={"id": f"c-{n}", "segment": "smb"})) for n in range(10_000)
    ]
    matching = {f"b-{n}" for n in range(10_000)}
    worker = start_worker(
        "worker", RULES_PATH=str(rules), SLACK_API_URL=slack_url(slack_proxy), SLACK_TIMEOUT_SECONDS="3", CHANNEL_RATE_LIMIT_PER_MINUTE="20"
    )  # the default
    worker.wait_assigned()
    assert worker.process is not None

    slack_proxy.drop()  # Slack unreachable while the backlog builds up
    end = produce(kafka_bootstrap, topics["FEEDBACK_TOPIC"], events)
    # The stream does not wait for Slack: every answer is handled and committed, its alert owed (on record).
    wait_for(lambda: all_committed(kafka_bootstrap, topics, end), 120, "every offset committed while Slack is unreachable")
    assert "pausing consumption" not in worker.output()
    assert len(read_topic(kafka_bootstrap, topics["FOLLOWUP_TOPIC"], expect=10_000, timeout=120)) == 10_000  # the keeper is done
    cpu = CpuMeter(worker.process.pid)  # from here the worker only waits for Slack
    hold(15, worker)  # a rate-limit summary comes due and is retried meanwhile
    share = cpu.share()
    slack_proxy.heal()

    wait_for(
        lambda: all_committed(kafka_bootstrap, topics, end) and all_in_slack(fake_slack, matching),
        300,
        "every offset committed after the outage and every answer in Slack",
    )
    alive(worker)
    posted = list(fake_slack.messages)
    kinds = [(m.get("metadata") or {}).get("event_type") for m in posted]
    summaries = [m for m, kind in zip(posted, kinds, strict=True) if kind == "feedback_alert_digest"]
    print(
        f"\nbacklog of 10,000 after a Slack outage: {len(posted)} messages ({kinds.count('feedback_alert')} alerts, "
        f"{len(summaries)} rate-limit summaries of {[m['metadata']['event_payload']['count'] for m in summaries]}); "
        f"worker CPU during the outage {share:.1%} of a core"
    )
    assert share < MAX_CPU, f"the worker used {share:.0%} of a core while Slack was unreachable"
    assert len(posted) < 100, f"{len(posted)} Slack messages for a backlog of 10,000"
    assert all("rate limit" in m["text"] for m in summaries)
    assert_exactly_once(appearances(fake_slack), matching, fake_slack)
