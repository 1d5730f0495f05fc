"""Realistic generated feedback for the demo and the benchmark.

A mix like real survey traffic: mostly NPS, some CSAT and CES; more promoters than
detractors; comments in several languages that fit the score; a few customers worth a lot;
and, on request, a sprinkling of malformed messages of every kind the DLQ must catch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

SEGMENTS = [("smb", 0.6, (20, 400)), ("mid-market", 0.3, (400, 3000)), ("enterprise", 0.1, (3000, 40000))]
NAMES = [
    "Purrfect Prints",
    "Tartu Tech",
    "Kohvik Kass",
    "De Gouden Fiets",
    "Nordlys Studio",
    "Bakkerij Bol",
    "Tallinna Trükk",
    "Hola Hosting",
    "Müller Maschinenbau",
    "Atlas Freight",
    "Blue Heron Books",
    "Pärnu Paber",
    "Zeebries Reizen",
    "Cafe Cortado",
    "Orbit Analytics",
    "Lumen Labs",
    "Sol y Sombra",
    "Koogel Mogel",
]
NEGATIVE = [
    "Printer ink arrived late again",
    "Support took three days to answer, I want a refund",
    "We are going to cancel our subscription",
    "De levering was weer te laat, ik wil mijn geld terug",
    "Ik overweeg om mijn abonnement op te zeggen",
    "Tarne hilines ja keegi ei vastanud, tahan raha tagasi",
    "Arve oli vale juba teist kuud järjest",
    "El pedido llegó roto, quiero un reembolso",
    "Die Rechnung war falsch und niemand hat zurückgerufen",
    "Our lawyer will be in touch about the outage",
    "Too many steps to change my billing address",
    "<!channel> nobody reads these anyway <@U0123> {{ 7*7 }}",
]
NEUTRAL = ["It was okay", "Prima, maar de app is traag", "Oli okei", "Está bien", "Fine, nothing special", None]
POSITIVE = [
    "Great service, thank you!",
    "Super snelle levering, top!",
    "Väga hea teenindus, aitäh",
    "¡Excelente atención!",
    "Alles bestens, danke",
    "The new dashboard saves me an hour a day",
    None,
]
CHANNELS = ["email", "in-app", "sms", "web"]
TOUCHPOINTS = ["support", "delivery", "billing", "onboarding", "product"]


class FeedbackGenerator:
    def __init__(self, seed: int = 7, customers: int = 60, start: datetime | None = None, spacing_s: float = 7.0) -> None:
        self.rng = random.Random(seed)
        self.start = start or datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        self.spacing_s = spacing_s  # seconds between answers; stream() narrows it so no answer is in the future
        self.customers = [self._customer(i) for i in range(customers)]

    def _customer(self, i: int) -> dict[str, Any]:
        rng = self.rng
        segment, _, (low, high) = rng.choices(SEGMENTS, weights=[s[1] for s in SEGMENTS])[0]
        name = NAMES[i] if i < len(NAMES) else f"{rng.choice(NAMES)} #{i // len(NAMES) + 1}"
        return {
            "id": f"c-{i:04d}",
            "name": name,
            "email": f"cx{i}@example.com",
            "segment": segment,
            "monthly_value": float(round(rng.uniform(low, high), 2)),
        }

    def event(self, n: int) -> dict[str, Any]:
        rng = self.rng
        survey = rng.choices(["nps", "csat", "ces"], weights=[60, 25, 15])[0]
        if survey == "nps":
            score = rng.choices(range(11), weights=[2, 1, 2, 2, 3, 5, 8, 13, 17, 22, 25])[0]
            mood = "neg" if score <= 6 else "neutral" if score <= 8 else "pos"
        elif survey == "csat":
            score = rng.choices(range(1, 6), weights=[7, 8, 10, 30, 45])[0]
            mood = "neg" if score <= 2 else "neutral" if score == 3 else "pos"
        else:
            score = rng.choices(range(1, 6), weights=[30, 30, 20, 12, 8])[0]
            mood = "neg" if score >= 4 else "neutral" if score == 3 else "pos"
        comment = rng.choice(NEGATIVE if mood == "neg" else NEUTRAL if mood == "neutral" else POSITIVE)
        event = {
            "event_id": f"f-{n:07d}",
            "occurred_at": (self.start + timedelta(seconds=n * self.spacing_s)).isoformat(),
            "survey": survey,
            "score": score,
            "customer": rng.choice(self.customers),
            "channel": rng.choice(CHANNELS),
            "touchpoint": rng.choice(TOUCHPOINTS),
            "attributes": {"region": rng.choice(["eu", "us", "apac"])},
        }
        if comment is not None:
            event["comment"] = comment
        return event

    def malformed(self, n: int) -> bytes:
        """One bad message of a rotating kind: each must end in the DLQ with its reason."""
        good = self.event(n)
        kinds: list[Callable[[], bytes]] = [
            lambda: b"this is not json",
            lambda: b"\xff\xfe\x00 not utf-8 \xc3\x28",
            lambda: json.dumps(good | {"score": 11, "survey": "nps"}).encode(),
            lambda: json.dumps({k: v for k, v in good.items() if k != "customer"}).encode(),
            lambda: json.dumps(good | {"survey": "sentiment"}).encode(),
            lambda: json.dumps(good | {"score": "three"}).encode(),
            lambda: json.dumps(good | {"occurred_at": "2026-11-24T10:00:00"}).encode(),
            lambda: json.dumps(good | {"customer": {"id": "c-1", "monthly_value": -5}}).encode(),
        ]
        return kinds[n % len(kinds)]()

    def stream(self, count: int, malformed_every: int = 0) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs; every `malformed_every`-th message is malformed (0: none)."""
        bad = 0
        available = (datetime.now(UTC) - self.start).total_seconds()
        if count and available > 0 and count * self.spacing_s > available:
            self.spacing_s = available / count
        for n in range(count):
            if malformed_every and n % malformed_every == malformed_every - 1:
                bad += 1
                yield f"bad-{n}".encode(), self.malformed(bad - 1)
            else:
                event = self.event(n)
                yield event["customer"]["id"].encode(), json.dumps(event, ensure_ascii=False).encode()
