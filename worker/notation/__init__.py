"""How ops write things by hand: durations (`30s`, `4h`), YAML that remembers `file:line`, templated names.

The lowest layer: rules, settings and tasks all parse what a person typed, and every error
they raise names the file, the line and the key (yamlsource.py).
"""

from .durations import Duration, format_duration, parse_duration
from .names import check_name_template
from .yamlsource import LineDict, LineList, Location, Problems, SourceError, load_yaml, locate

__all__ = [
    "Duration",
    "LineDict",
    "LineList",
    "Location",
    "Problems",
    "SourceError",
    "check_name_template",
    "format_duration",
    "load_yaml",
    "locate",
    "parse_duration",
]
