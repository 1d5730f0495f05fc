"""How fast `feedback-worker rules test` replays history: generate a big JSONL, backtest it, time it.

1. write --events answers from worker.demo.FeedbackGenerator, spread evenly over the last
   --days days (1 in --malformed-every is one of the generator's malformed kinds), to --out or
   a temporary file (removed afterwards unless --keep);
2. run the backtest in this process, exactly as the CLI does (worker.backtest.run_file),
   with --rules and --templates (default: the shipped ones), and print its report;
3. print the wall time of the backtest alone (generation excluded) and events/s.

Usage: .venv/bin/python bench/backtest.py --events 1000000
Exits 1 if the counts do not add up (read = valid + invalid = lines written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from worker.backtest import Replay, render_samples, run_file  # noqa: E402
from worker.backtest.parallel import default_jobs  # noqa: E402
from worker.config import load_settings  # noqa: E402
from worker.demo import FeedbackGenerator  # noqa: E402
from worker.loop.startup import load_checked  # noqa: E402


def generate(path: Path, events: int, days: float, seed: int, malformed_every: int) -> int:
    """Write `events` lines; return how many are malformed. The last answer is a minute ago."""
    span_s = days * 86400
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=span_s + 60)
    generator = FeedbackGenerator(seed=seed, start=start, spacing_s=span_s / max(events, 1))
    bad = 0
    dumps = json.dumps
    with open(path, "wb") as out:
        lines: list[bytes] = []
        for n in range(events):
            if malformed_every and n % malformed_every == malformed_every - 1:
                lines.append(generator.malformed(bad).replace(b"\n", b" ") + b"\n")  # rotates through every kind
                bad += 1
            else:
                lines.append(dumps(generator.event(n), ensure_ascii=False).encode() + b"\n")
            if len(lines) >= 10_000:
                out.writelines(lines)
                lines.clear()
        out.writelines(lines)
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="answers to generate (default 1,000,000)")
    parser.add_argument("--days", type=float, default=30.0, help="spread them over this many days (default 30)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--malformed-every", type=int, default=1000, help="1 in N lines is malformed (0: none)")
    parser.add_argument("--out", type=Path, help="where to write the JSONL (default: a temporary file)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary file")
    parser.add_argument("--rules", type=Path, default=ROOT / "rules")
    parser.add_argument("--templates", type=Path, default=ROOT / "templates")
    parser.add_argument("--show", type=int, default=0, help="also render N sample alerts")
    parser.add_argument("--jobs", type=int, help="processes for the replay (default: the CPUs; 1: one process)")
    args = parser.parse_args()

    path = args.out
    if path is None:
        handle, name = tempfile.mkstemp(prefix="backtest-", suffix=".jsonl")
        os.close(handle)
        path = Path(name)
    try:
        started = time.monotonic()
        bad = generate(path, args.events, args.days, args.seed, args.malformed_every)
        size = path.stat().st_size
        print(
            f"wrote {args.events:,} events ({bad:,} malformed, {size / 1e6:,.0f} MB) to {path} in {time.monotonic() - started:.1f} s",
            flush=True,
        )

        settings = load_settings(None, rules_path=args.rules, templates_path=args.templates)
        rules, renderer = load_checked(settings)
        replay = Replay(rules, settings.slack_default_channel, samples_per_rule=args.show)
        wall = time.perf_counter()
        result = run_file(path, replay, label=", ".join(rules.files), jobs=args.jobs)
        wall = time.perf_counter() - wall
        print()
        print(result.report)
        if args.show:
            print()
            print(render_samples(replay, renderer, args.show))
        print()
        print(
            f"backtest wall time: {wall:.1f} s for {result.summary.read:,} events "
            f"({result.summary.read / wall:,.0f} events/s, {wall / max(result.summary.read, 1) * 1e6:.1f} µs/event), "
            f"jobs={args.jobs or default_jobs()}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
        )
        s = result.summary
        if s.read != args.events or s.valid + s.invalid != s.read or s.invalid != bad:
            print(
                f"FAILED: counts do not add up: read {s.read}, valid {s.valid}, invalid {s.invalid}, "
                f"written {args.events} with {bad} malformed",
                file=sys.stderr,
            )
            return 1
        return 0
    finally:
        if args.out is None and not args.keep:
            path.unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
