"""`feedback-worker doctor`: is this deployment ready to run? Checked before the first deploy and after every change.

One row per check: ✓ (fine), ✗ (the worker would fail or misbehave: the row says the fix) or – (not
checked, or only worth knowing: the row says why). Exit 0 when no row is ✗, 1 otherwise, 2 when the
settings do not parse; `--json` prints the same rows as one JSON object.

- Settings parse; rules, templates, routes and metric rules load and the rules files' own tests pass
  (what `rules check` does).
- Kafka: the brokers answer; every topic the worker relies on is judged as at start-up (the same
  problems, word for word: broker/topology.py); the consumer group's members and its lag.
- Slack: `auth.test` answers; the bot token holds the scopes this configuration needs (Slack names
  them in every answer's `x-oauth-scopes` header) and those of deploy/slack/manifest.yaml; every
  channel the configuration names exists and the bot is in it; owners and pool members that are
  user ids are users (`users.info`, with `users:read`); the app-level token opens a Socket Mode
  connection (it is closed as soon as Slack greets it).

Nothing is posted, produced or committed, and no group is joined. Every wait is bounded by
`--timeout`: a broker or Slack that does not answer is a ✗ saying how long it was waited for.
Kafka and Slack are checked at the same time.
"""

from .command import DEFAULT_TIMEOUT_S, diagnose, register, run
from .names import BOT_SCOPES, HISTORY_SCOPES, MANIFEST, Named, named_in, required_scopes
from .rows import FAIL, OK, SKIP, Row, as_json, table

__all__ = [
    "BOT_SCOPES",
    "DEFAULT_TIMEOUT_S",
    "FAIL",
    "HISTORY_SCOPES",
    "MANIFEST",
    "OK",
    "SKIP",
    "Named",
    "Row",
    "as_json",
    "diagnose",
    "named_in",
    "register",
    "required_scopes",
    "run",
    "table",
]
