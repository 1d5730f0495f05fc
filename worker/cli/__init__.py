"""`feedback-worker`: the command line. commands.py builds the parser; bigger groups of commands have a module each."""

from .commands import SCHEMAS, main, schema_of
from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "SCHEMAS", "main", "schema_of"]
