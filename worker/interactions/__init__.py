"""Slack interactivity (Socket Mode): buttons, checkboxes, a picker and a dialog on each alert.

    link.py      the Socket Mode connection, envelopes acknowledged, actions sent to the keeper
    handlers.py  what a click or a dialog means: actions, a dialog to open, or a refusal
    actors.py    who may act (TASK_ACTORS: users and user groups)

On when SLACK_APP_TOKEN is set; the card the buttons sit on is alerting/cards.py, and its
updates after every change are keeper/card.py's.
"""

from .actors import actors_allowed
from .handlers import Decision, on_click, on_submit
from .link import SlackLink

__all__ = ["Decision", "SlackLink", "actors_allowed", "on_click", "on_submit"]
