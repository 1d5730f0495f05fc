"""Hot reload of rules and templates, without a restart and without losing an event.

The worker asks `Reloader.poll()` between batches. When the files under RULES_PATH or
TEMPLATES_PATH changed (and stayed unchanged for one more check, so a half-saved file is
not read), or on SIGHUP, the whole set is loaded and checked exactly like at start-up.
A valid set replaces the old one atomically between two events; an invalid one is
rejected with the same `file:line` messages as `rules check`, and the old set stays.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..alerting import AlertRenderer
from ..config import ConfigError, Settings
from ..notation import SourceError
from ..rules import RulesError, RuleSet

log = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, int, int], ...]
Loaded = tuple[RuleSet, AlertRenderer]


def fingerprint(*roots: Path) -> Fingerprint:
    """(path, mtime, size) of every file under the roots: cheap to compare every few seconds."""
    entries = []
    for root in roots:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:  # deleted between listing and stat: the next check sees it
                continue
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


class Reloader:
    def __init__(self, settings: Settings, load: Callable[[Settings], Loaded], interval_s: float) -> None:
        self.settings = settings
        self.load = load
        self.interval_s = interval_s  # 0: only on SIGHUP
        self.requested = threading.Event()  # set by SIGHUP
        self._roots = (Path(settings.rules_path), Path(settings.templates_path))
        self._current = fingerprint(*self._roots)
        self._pending: Fingerprint | None = None
        self._next_check = time.monotonic() + interval_s

    def poll(self, in_use: RuleSet) -> Loaded | str | None:
        """A new valid set, the rejection message of an invalid one, or None (nothing to do).

        Either outcome is logged: a rejection loudly, with every problem, as `rules check` shows them."""
        forced = self.requested.is_set()
        if not forced and (not self.interval_s or time.monotonic() < self._next_check):
            return None
        self._next_check = time.monotonic() + self.interval_s
        seen = fingerprint(*self._roots)
        if not forced:
            if seen == self._current:
                self._pending = None
                return None
            if seen != self._pending:  # changed since the last look: maybe still being written
                self._pending = seen
                return None
        self.requested.clear()
        self._current, self._pending = seen, None
        try:
            rules, renderer = self.load(self.settings)
        except (RulesError, ConfigError, SourceError) as err:
            problems = "\n".join(str(e) for e in err.errors) if isinstance(err, RulesError) else str(err)
            log.error(
                "RULES RELOAD REJECTED: keeping the %d rules in use. Fix these and save again:\n  %s",
                len(in_use) + len(in_use.metric_rules),
                problems.replace("\n", "\n  "),
            )
            return problems
        log.warning("rules reloaded: %d rules and %d metric rules from %s", len(rules), len(rules.metric_rules), ", ".join(rules.files))
        return rules, renderer
