"""HEARD: Hear, Empathize, Apologize, Resolve, Diagnose, the service-recovery method Disney made famous.

Each task carries the five steps in order, with guidance an agent can follow; a rule may
override the guidance of any step (`followup.guidance`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

Step = Literal["hear", "empathize", "apologize", "resolve", "diagnose"]
STEPS: tuple[Step, ...] = ("hear", "empathize", "apologize", "resolve", "diagnose")

DEFAULT_STEPS: dict[Step, tuple[str, str]] = {
    "hear": (
        "Hear",
        "Read the whole response and the customer's recent history, then contact them. "
        "Let them tell the full story without interrupting or defending.",
    ),
    "empathize": (
        "Empathize",
        "Acknowledge how the experience made them feel, in your own words. Show you understand why it matters to them.",
    ),
    "apologize": (
        "Apologize",
        "Apologize sincerely for the experience, without blame or excuses, even where the cause was outside your team.",
    ),
    "resolve": (
        "Resolve",
        "Agree a concrete fix with the customer, act on it quickly, and confirm with them that it is resolved.",
    ),
    "diagnose": (
        "Diagnose",
        "Find the root cause without blame and record it, so the process can be fixed "
        "and the same problem does not reach another customer.",
    ),
}


class TaskStep(BaseModel):
    step: Step
    title: str
    guidance: str


def heard_steps(guidance: dict[Step, str]) -> list[TaskStep]:
    """The five steps in order, each with the rule's guidance or the default."""
    return [TaskStep(step=step, title=DEFAULT_STEPS[step][0], guidance=guidance.get(step, DEFAULT_STEPS[step][1])) for step in STEPS]
