"""/healthz and /readyz: is the loop alive, and is this worker ready to do its work?

Liveness is one question: has the loop returned from poll() within HEALTH_POLL_TIMEOUT_SECONDS?
(poll() also runs the rebalance callbacks, which may sync the state topic for up to 30 s, so
the timeout stays well above that.) A stuck loop (a hung commit, a deadlock) fails it and
Kubernetes restarts the pod; uncommitted events are redone by the next run.

Readiness asks three: joined (the group assigned this worker its partitions, possibly none
when there are more replicas than partitions), state (the first sync of the state topic is
done: throttles, posts and tasks are known), slack (an `auth.test` at start-up succeeded, and
no call since found Slack unreachable; or Slack is off, with no SLACK_BOT_TOKEN). While Slack
is unreachable it is asked again every RECHECK_S; a successful post clears it at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..delivery import Call

log = logging.getLogger(__name__)

RECHECK_S = 15.0
#: Refusals that mean the token itself cannot be used: as bad as Slack being down.
TOKEN_ERRORS = {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


class SlackReachability:
    """Is Slack reachable with our token? Off (no token) is fine; unknown until the first auth.test answers."""

    def __init__(self, check: Callable[[], str | None] | None, off: str = "", recheck_s: float = RECHECK_S) -> None:
        self._check = check  # SlackSink.check: None if reachable, else why not
        self._recheck_s = recheck_s
        self._state = Check(True, off) if check is None else Check(False, "auth.test not answered yet")
        self._failed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """auth.test now (on a daemon thread: start-up does not wait for Slack), then whenever Slack fails."""
        if self._check is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="slack-check", daemon=True)
            self._thread.start()

    def state(self) -> Check:
        return self._state

    def observe(self, method: str, seconds: float, call: Call) -> None:
        """Every Slack call the sink makes (its threads): an answer proves Slack reachable; no answer, or a dead token, does not."""
        if self._check is None:
            return
        if call.result == "ok":
            if not self._state.ok:
                log.info("Slack is reachable again (%s answered)", method)
            self._state = Check(True, f"{method} answered")
        elif _unreachable(call):
            if self._state.ok:
                log.warning("Slack unreachable (%s: %s): /readyz fails until auth.test answers", method, call.reason)
            self._state = Check(False, f"{method}: {call.reason}")
            self._failed.set()

    def close(self) -> None:
        self._stop.set()
        self._failed.set()

    def _run(self) -> None:
        assert self._check is not None
        while not self._stop.is_set():
            self._failed.clear()
            problem = self._check()
            if problem is None:
                if not self._failed.is_set():  # else a call failed meanwhile: ask again
                    self._state = Check(True, "auth.test answered")
                self._failed.wait()  # until a call finds Slack unreachable (or close)
            else:
                self._state = Check(False, problem)
                self._stop.wait(self._recheck_s)


def _unreachable(call: Call) -> bool:
    if call.result == "unavailable":
        return "429" not in call.reason and "ratelimited" not in call.reason  # rate-limited: Slack is there, and busy
    return call.reason in TOKEN_ERRORS


class Health:
    """The answers of /healthz and /readyz, from the worker's own flags (read, never waited for)."""

    def __init__(self, poll_timeout_s: float, slack: SlackReachability, clock: Callable[[], float] = time.monotonic) -> None:
        self.poll_timeout_s = poll_timeout_s
        self.slack = slack
        self.clock = clock
        self.started = clock()
        self.worker: Any = None  # app.Worker, once built: until then the process is starting

    def attach(self, worker: Any) -> None:
        self.worker = worker

    def live(self) -> tuple[bool, dict[str, Any]]:
        """Alive while the loop polls (before the loop exists: while start-up is younger than the timeout)."""
        last = self.worker.polled_at if self.worker is not None else self.started
        age = max(self.clock() - last, 0.0)
        alive = age <= self.poll_timeout_s
        return alive, {"alive": alive, "last_poll_seconds_ago": round(age, 3), "timeout_seconds": self.poll_timeout_s}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        worker = self.worker
        checks = {
            "joined": Check(True, "partitions assigned")
            if worker is not None and worker.joined
            else Check(False, "not yet a member of the consumer group"),
            "state": Check(True, "state topic read to its end")
            if worker is not None and worker.view.synced
            else Check(False, "still reading the state topic"),
            "slack": self.slack.state(),
        }
        failed = [name for name, check in checks.items() if not check.ok]
        return not failed, {"ready": not failed, "failed": failed, "checks": {name: c.as_dict() for name, c in checks.items()}}
