"""Seeded input mutators for the fuzz tests: the same inputs on every run, so CI is reproducible.

Valid inputs come first (generated feedback, rules files that load); the mutators then break
them the ways producers and people do: flipped and cut bytes, wrong types, deep nesting, huge
numbers, odd Unicode, NaN, duplicate keys. `watchdog` bounds the time: a hang dumps every
thread's stack and fails the run instead of blocking CI forever.

What one input costs is measured with `cpu_time` (this thread's CPU time), not the wall clock:
a pathological input (a billion laughs, a regex that backtracks) shows as CPU spent whatever
else runs, while the wall time of a cheap one grows with the machine's load (`make test` runs
the suite on several processes: a 20 ms input took 0.66 s of wall time there, and the 0.5 s
bound failed though nothing was slow). The watchdog's bound is on the wall clock, as a hang's
is, and generous (HANG_S) for the same reason.
"""

from __future__ import annotations

import faulthandler
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: JSON texts (not Python values): what json.dumps cannot write is exactly what a broken producer sends.
ODD_JSON = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "-1e309",
    "1e-400",
    "-0",
    "0.0",
    "1" + "0" * 400,
    "-" + "9" * 5000,
    "9223372036854775808",
    "-9223372036854775809",
    "3.0",
    "3e0",
    "true",
    "false",
    "null",
    '""',
    '" "',
    "[]",
    "{}",
    '"\\u0000"',
    '"\\ud800"',
    '"\\udfff\\ud800"',
    '"\\u202e\\u200b\\ufeff"',
    '"\\u2028\\u2029"',
    '"a\\nb\\r\\nc"',
    '"\U0001f600\U0001f4a9"',
    '"e\\u0301\\u0301\\u0301"',
    '"0001-01-01T00:00:00+01:00"',
    '"9999-12-31T23:59:59-01:00"',
    '"2026-11-24T23:59:60Z"',
    '"2026-11-24T10:00:00+24:00"',
    '"2026-11-24T10:00:00.1234567890123Z"',
    '"2026-02-30T10:00:00Z"',
    '"2026-11-24"',
    '"now"',
    '"1700000000"',
    "1700000000",
    "-62135596801",
    "253402300800",
    "1e20",
    '"nps"',
    '"NPS"',
    '"csat"',
    '"ces"',
    '"sentiment"',
    "[1, 2]",
    '{"id": ""}',
    '{"id": null}',
    '{"id": "c", "monthly_value": "NaN"}',
]

#: Byte strings that are not text, or only nearly: invalid UTF-8, BOMs, overlong and surrogate encodings.
ODD_BYTES = [b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\x80", b"\xc3"]


class EventMutator:
    """Turns one valid event (a dict) into bytes that may or may not still be a valid event."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.structural: list[Callable[[dict], str]] = [
            self.odd_value,
            self.drop_field,
            self.deep_nest,
            self.duplicate_key,
            self.wrong_container,
            self.huge_string,
            self.odd_value_nested,
            self.unknown_fields,
        ]
        self.textual: list[Callable[[bytes], bytes]] = [
            self.flip_bits,
            self.truncate,
            self.insert_bytes,
            self.delete_span,
            self.repeat_span,
            self.splice_odd_bytes,
        ]

    def mutate(self, event: dict) -> bytes:
        event = json.loads(json.dumps(event))  # a deep copy: the generator reuses its customer dicts
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            data = rng.choice(self.structural)(event).encode("utf-8", "surrogatepass")
        else:
            data = json.dumps(event, ensure_ascii=rng.random() < 0.5).encode()
        if roll >= 0.35:  # some structural mutations also get their bytes damaged
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                data = rng.choice(self.textual)(data)
        return data

    # -- structure (on the event, written out as JSON text by hand where json.dumps would refuse) --

    def _field(self, event: dict) -> tuple[dict, str]:
        """A random (container, key) in the event, the customer included."""
        if "customer" in event and isinstance(event["customer"], dict) and self.rng.random() < 0.3:
            return event["customer"], self.rng.choice(list(event["customer"]) or ["id"])
        return event, self.rng.choice(list(event))

    @staticmethod
    def _dumps_with(event: dict, where: dict, key: str, raw: str) -> str:
        """The event as JSON with where[key] replaced by the raw JSON text `raw`."""
        marker = "\x00MARK\x00"
        where[key] = marker
        return json.dumps(event, ensure_ascii=False).replace(json.dumps(marker, ensure_ascii=False), raw)

    def odd_value(self, event: dict) -> str:
        where, key = self._field(event)
        return self._dumps_with(event, where, key, self.rng.choice(ODD_JSON))

    def odd_value_nested(self, event: dict) -> str:
        event["attributes"] = {"x": None}
        return self._dumps_with(event, event["attributes"], "x", self.rng.choice(ODD_JSON))

    def drop_field(self, event: dict) -> str:
        where, key = self._field(event)
        where.pop(key, None)
        return json.dumps(event)

    def deep_nest(self, event: dict) -> str:
        where, key = self._field(event)
        depth = self.rng.choice((10, 100, 250, 1000, 20000))
        opener, closer = self.rng.choice((("[", "]"), ('{"a":', "}")))
        return self._dumps_with(event, where, key, opener * depth + "1" + closer * depth)

    def duplicate_key(self, event: dict) -> str:
        key = self.rng.choice(list(event))
        text = json.dumps(event, ensure_ascii=False)
        return "{" + json.dumps(key) + ": " + self.rng.choice(ODD_JSON) + ", " + text[1:]

    def wrong_container(self, event: dict) -> str:
        return self.rng.choice((json.dumps([event]), json.dumps(list(event.values())), json.dumps(json.dumps(event)), "null"))

    def huge_string(self, event: dict) -> str:
        where, key = self._field(event)
        where[key] = self.rng.choice("aé☕\U0001f600\u0301") * self.rng.choice((1000, 100_000))
        return json.dumps(event, ensure_ascii=self.rng.random() < 0.5)

    def unknown_fields(self, event: dict) -> str:
        event.update({f"x{i}": i for i in range(self.rng.choice((1, 10, 1000)))})
        return json.dumps(event)

    # -- bytes ---------------------------------------------------------------------------

    def flip_bits(self, data: bytes) -> bytes:
        if not data:
            return data
        buf = bytearray(data)
        for _ in range(self.rng.choice((1, 2, 8))):
            buf[self.rng.randrange(len(buf))] ^= 1 << self.rng.randrange(8)
        return bytes(buf)

    def truncate(self, data: bytes) -> bytes:
        return data[: self.rng.randrange(len(data) + 1)]

    def insert_bytes(self, data: bytes) -> bytes:
        at = self.rng.randrange(len(data) + 1)
        return data[:at] + bytes(self.rng.randrange(256) for _ in range(self.rng.choice((1, 3, 16)))) + data[at:]

    def delete_span(self, data: bytes) -> bytes:
        at = self.rng.randrange(len(data) + 1)
        return data[:at] + data[at + self.rng.choice((1, 4, 32)) :]

    def repeat_span(self, data: bytes) -> bytes:
        at = self.rng.randrange(len(data) + 1)
        span = data[at : at + self.rng.choice((2, 8, 40))]
        return data[:at] + span * self.rng.choice((2, 50)) + data[at:]

    def splice_odd_bytes(self, data: bytes) -> bytes:
        at = self.rng.randrange(len(data) + 1)
        return data[:at] + self.rng.choice(ODD_BYTES) + data[at:]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value, for messages that start from nothing at all."""
    kind = rng.randrange(7 if depth < 4 else 4)
    if kind == 0:
        return rng.choice((None, True, False))
    if kind == 1:
        return rng.choice((0, -1, 7, 11, 2**63, -(2**70), 3.5, -0.0, 1e300))
    if kind == 2:
        return "".join(chr(rng.choice((rng.randrange(32, 127), rng.randrange(0x80, 0x2FFF)))) for _ in range(rng.randrange(12)))
    if kind == 3:
        return rng.choice(("nps", "csat", "ces", "2026-11-24T10:00:00Z", "c-1", ""))
    if kind in (4, 5):
        keys = ("event_id", "occurred_at", "survey", "score", "customer", "id", "comment", "attributes", "monthly_value")
        return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(9))}
    return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]


def fuzzed_values(rng: random.Random, count: int, seed: Callable[[int], dict]) -> Iterator[tuple[int, bytes | None]]:
    """`count` message values: a valid seed unchanged (1 in 10, must stay valid), random JSON (1 in 20), an empty
    or null value (1 in 1,000), and otherwise the seed mutated (EventMutator)."""
    mutator = EventMutator(rng)
    for n in range(count):
        roll = rng.random()
        if roll < 0.1:
            yield n, json.dumps(seed(n)).encode()
        elif roll < 0.15:
            yield n, json.dumps(random_json(rng)).encode()
        elif roll < 0.151:
            yield n, rng.choice((None, b"", b"null", b"{}", b"[]", b" "))
        else:
            yield n, mutator.mutate(seed(n))


#: CPU seconds of the calling thread: the cost of one input, the same on an idle and a loaded machine.
cpu_time = time.thread_time


def cpu_budget(seconds: float) -> float:
    """What one input may cost, in CPU seconds: `seconds`, or three times that when a tracer runs (coverage in
    `make coverage`, a debugger), which makes Python code two to three times slower: under coverage the
    largest billion-laughs file of the rules run took 2.0 s, 1.7 s without."""
    coverage = sys.modules.get("coverage")
    traced = sys.gettrace() is not None or (coverage is not None and coverage.Coverage.current() is not None)
    return seconds * 3 if traced else seconds


#: A fuzz run's hang guard (wall clock): about 8x a run's time alone (70 s for the rules files), for a
#: machine shared with the parallel suite, where the 70 s run took more than 150 s.
HANG_S = 600.0


@contextmanager
def watchdog(seconds: float = HANG_S) -> Iterator[None]:
    """Fail loudly, with every thread's stack, if the block runs longer than `seconds` (a hang)."""
    faulthandler.dump_traceback_later(seconds, exit=True, file=sys.__stderr__)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


# -- rules files ----------------------------------------------------------------------------

#: Small valid rules files between them using every part of the syntax; the mutators start here.
RULE_SEEDS = [
    "rules:\n  - id: a\n    when:\n      survey: nps\n      score: {lte: 6}\n    severity: high\n",
    "rules:\n"
    "  - id: words\n"
    "    description: churn words\n"
    "    when:\n"
    "      comment:\n"
    "        contains_any: [cancel, refund, tühista]\n"
    "        ignore_accents: true\n"
    "      customer.segment: {in: [smb, enterprise], ne: partner}\n"
    "    followup:\n"
    "      owner: retention\n"
    "      due_in: 8h\n"
    "      guidance:\n"
    "        diagnose: Ask what went wrong.\n"
    "    alert: {channel: '#cx-{{ customer.segment }}', template: detractor.slack.j2}\n",
    "rules:\n"
    "  - id: nested\n"
    "    when:\n"
    "      all:\n"
    "        - any:\n"
    "            - {survey: csat, score: {lte: 2}}\n"
    "            - not: {comment: {matches: '^(ok|fine)$'}}\n"
    "        - attributes.region: {exists: true}\n"
    "        - occurred_at: {gte: '2026-01-01T00:00:00+00:00'}\n"
    "        - customer.monthly_value: {gt: 1000.5}\n"
    "    severity: critical\n"
    "    throttle: {key: customer.id, window: 1h}\n",
    "rules:\n"
    "  - id: grouped\n"
    "    when: {survey: ces, score: {gte: 4}, touchpoint: {contains: bill}}\n"
    "    group: {by: [customer.segment, attributes.region], wait: 30s, interval: 5m, max_items: 10}\n"
    "    severity: low\n"
    "  - id: metric\n"
    "    when: {metric: nps.score, window: 24h, dimension: {customer.segment: enterprise}, lt: 0, min_responses: 5}\n"
    "    alert: {channel: '#cx-leads'}\n",
    "rules:\n"
    "  - id: tested\n"
    "    when: {survey: nps, score: {lte: 6}}\n"
    "    alert: {channel: '#cx'}\n"
    "tests:\n"
    "  - name: detractor\n"
    "    event: {survey: nps, score: 3, comment: refund please, customer: {id: c-1, segment: smb}}\n"
    "    expect: {rule: tested, severity: medium, channel: '#cx', matched: [tested]}\n"
    "  - name: promoter\n"
    "    event: {score: 10}\n"
    "    expect: {rule: null}\n",
    "# a comment\nrules: []\n",
    "",
]

#: YAML fragments that mean something odd: tags, aliases, merge keys, special floats, flow and block scalars.
ODD_YAML = [
    "null",
    "~",
    "[]",
    "{}",
    "''",
    "3",
    "-1",
    "1e400",
    ".nan",
    ".inf",
    "-.inf",
    "0x1F",
    "0o17",
    "yes",
    "no",
    "on",
    "true",
    "2026-11-24",
    "2026-11-24T10:00:00Z",
    "12:30:00",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!str 3",
    "!!python/object/apply:os.system ['true']",
    "!!float nan",
    "*undefined",
    "&x [1, *x]",
    "{<<: {a: 1}}",
    "? [a, b]\n  : c",
    "|\n      multi\n      line",
    ">-\n      folded",
    "'it''s'",
    '"\\u0000\\ud800"',
    '"\\x85\\u2028"',
    "\t",
    "- - - -",
    "{a: {b: {c: [",
    "'(unclosed'",
    "'[z-a]'",
    "'(a+)+$'",
    "'#cx-{{ customer.segment }'",
    "'{{ 7*7 }}'",
    "'{% for x in y %}'",
    "0s",
    "99999999999d",
    "'\U0001f600'",
    "'e\u0301'",
    "'\u202e'",
    "\xa0",
    "%YAML 1.1",
    "---",
    "...",
    "@",
    "`",
]


class RulesMutator:
    """Turns a valid rules file into text that may or may not still load."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.mutations: list[Callable[[str], str]] = [
            self.replace_value,
            self.replace_value,
            self.replace_key,
            self.drop_line,
            self.duplicate_line,
            self.swap_lines,
            self.reindent,
            self.insert_char,
            self.truncate,
            self.flip_char,
            self.insert_odd_line,
            self.splice_seeds,
        ]

    def mutate(self, text: str) -> str:
        for _ in range(self.rng.choice((1, 1, 2, 3))):
            text = self.rng.choice(self.mutations)(text)
        return text

    def _lines(self, text: str) -> list[str]:
        return text.split("\n") if text else [""]

    def replace_value(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines))
        head, sep, _ = lines[i].partition(": ")
        if sep:
            lines[i] = f"{head}: {self.rng.choice(ODD_YAML)}"
        else:
            lines[i] = lines[i].split("- ")[0] + "- " + self.rng.choice(ODD_YAML)
        return "\n".join(lines)

    def replace_key(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines))
        indent = len(lines[i]) - len(lines[i].lstrip(" -"))
        key = self.rng.choice(
            (
                "id",
                "when",
                "severity",
                "all",
                "any",
                "not",
                "score",
                "lte",
                "in",
                "matches",
                "metric",
                "window",
                "rules",
                "tests",
                "expect",
                "event",
                "scor",
                "",
                "<<",
                "? x",
                "1",
                "null",
                "[a]",
            )
        )
        _, sep, rest = lines[i].partition(":")
        lines[i] = lines[i][:indent] + key + (sep + rest if sep else ": x")
        return "\n".join(lines)

    def drop_line(self, text: str) -> str:
        lines = self._lines(text)
        del lines[self.rng.randrange(len(lines))]
        return "\n".join(lines)

    def duplicate_line(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return "\n".join(lines)

    def swap_lines(self, text: str) -> str:
        lines = self._lines(text)
        i, j = self.rng.randrange(len(lines)), self.rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)

    def reindent(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines))
        lines[i] = self.rng.choice(("", " ", "   ", "\t", "        ")) + lines[i].lstrip(" ")
        return "\n".join(lines)

    def insert_char(self, text: str) -> str:
        at = self.rng.randrange(len(text) + 1)
        return text[:at] + self.rng.choice(":-[]{}&*!%|>'\"#,?@`\t\n\x00\x85\u2028\ufeff\U0001f600") + text[at:]

    def truncate(self, text: str) -> str:
        return text[: self.rng.randrange(len(text) + 1)]

    def flip_char(self, text: str) -> str:
        if not text:
            return text
        at = self.rng.randrange(len(text))
        return text[:at] + chr(ord(text[at]) ^ (1 << self.rng.randrange(7))) + text[at + 1 :]

    def insert_odd_line(self, text: str) -> str:
        lines = self._lines(text)
        i = self.rng.randrange(len(lines) + 1)
        indent = " " * self.rng.choice((0, 2, 4, 6, 8))
        lines.insert(i, indent + self.rng.choice(("x: ", "- ", "", "? ", "<<: ")) + self.rng.choice(ODD_YAML))
        return "\n".join(lines)

    def splice_seeds(self, text: str) -> str:
        other = self._lines(self.rng.choice(RULE_SEEDS))
        lines = self._lines(text)
        at = self.rng.randrange(len(lines) + 1)
        start = self.rng.randrange(len(other))
        return "\n".join(lines[:at] + other[start : start + self.rng.choice((1, 3, 8))] + lines[at:])


def billion_laughs(levels: int = 9, width: int = 9, leaf: str = "{survey: nps}") -> str:
    """The classic, as a rules file: each alias expands to `width` of the previous level, width**levels leaves.

    Every rule is valid and its `when:` small as written, but the last one's condition has
    width**levels leaves once the aliases are expanded: a checker that walks `when:` naively
    walks every copy.
    """
    lines = ["rules:", "  - id: laughs0", f"    when: &a0 {leaf}"]
    for level in range(1, levels + 1):
        lines += [f"  - id: laughs{level}", f"    when: &a{level} {{all: [{', '.join([f'*a{level - 1}'] * width)}]}}"]
    return "\n".join(lines) + "\n"
