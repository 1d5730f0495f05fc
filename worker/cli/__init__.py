"""`feedback-worker`: the command line. commands.py builds the parser; bigger groups of commands have a module each."""

from .exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from .commands import SCHEMAS, main, schema_of

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "SCHEMAS", "main", "schema_of"]
