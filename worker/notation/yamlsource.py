"""YAML that remembers where things came from, so errors can say `file:line`.

Ops edit rules by hand; an error that names the file, the line and the key is the
difference between a quick fix and a guessing game.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import yaml


@dataclass(frozen=True)
class Location:
    file: str
    line: int  # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class SourceError(Exception):
    """An error in a user-written file, located by file and line."""

    def __init__(self, location: Location, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class Problems:
    """Collects every mistake found in user-written files, so one run reports them all.

    A check records a problem and carries on with the next key, item or rule instead of
    stopping at the first: fixing a file then takes one round trip, not one per mistake.
    """

    def __init__(self) -> None:
        self.errors: list[SourceError] = []

    def add(self, where: Location, message: str) -> None:
        self.errors.append(SourceError(where, message))

    def append(self, error: SourceError) -> None:
        self.errors.append(error)

    def __len__(self) -> int:
        return len(self.errors)

    def ordered(self, files: list[str] | None = None) -> list[SourceError]:
        """By file (in `files` order when given, else by name), then line; same line: as found."""
        rank = {name: i for i, name in enumerate(files or [])}
        return sorted(self.errors, key=lambda e: (rank.get(e.location.file, len(rank)), e.location.file, e.location.line))


class LineDict(dict[Any, Any]):
    """A mapping that knows its own line and the line of each key."""

    location: Location
    key_locations: dict[Any, Location]

    def where(self, key: Any) -> Location:
        return self.key_locations.get(key, self.location)


class LineList(list[Any]):
    location: Location
    item_locations: list[Location]

    def where(self, index: int) -> Location:
        return self.item_locations[index] if index < len(self.item_locations) else self.location


class _Loader(yaml.SafeLoader):
    """SafeLoader (no arbitrary objects) that records line numbers on mappings and sequences."""


#: Far beyond any hand-written file (the shipped rules: ~800 values, 8 levels), far below trouble.
MAX_DEPTH = 100
#: Values after expanding aliases. Anchors of anchors ("billion laughs") would otherwise make
#: every later step walk an exponential number of copies: a hang, not an error.
MAX_VALUES = 100_000


def _make_loader(file: str) -> type[_Loader]:
    class Loader(_Loader):
        _nesting = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            """Bound nesting before recursing (deeper, the parser hits Python's recursion limit) and
            measure each node with its aliases expanded, bottom-up, so checking costs no recursion."""
            self._nesting += 1
            try:
                if self._nesting > MAX_DEPTH:
                    line = self.peek_event().start_mark.line + 1  # type: ignore[no-untyped-call]  # types-PyYAML leaves Parser.peek_event unannotated
                    raise SourceError(Location(file, line), f"nested more than {MAX_DEPTH} levels deep")
                # Any: PyYAML's Node, to which `expanded` and `depth` are added below
                node: Any = super().compose_node(parent, index)
            finally:
                self._nesting -= 1
            if not hasattr(node, "expanded"):  # an alias returns its anchor's node, already measured
                children = [] if isinstance(node, yaml.ScalarNode) else _children(node)
                # a recursive alias (`&x [*x]`) meets its node unmeasured; the constructor refuses it later
                node.expanded = 1 + sum(getattr(c, "expanded", 1) for c in children)
                node.depth = 1 + max((getattr(c, "depth", 0) for c in children), default=0)
                if node.depth > MAX_DEPTH:
                    raise SourceError(
                        Location(file, node.start_mark.line + 1), f"nested more than {MAX_DEPTH} levels deep (through aliases)"
                    )
                if node.expanded > MAX_VALUES:
                    raise SourceError(
                        Location(file, node.start_mark.line + 1),
                        f"more than {MAX_VALUES:,} values once aliases are expanded (aliases of aliases?)",
                    )
            return node

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            """PyYAML's own constructors raise plain errors on some explicitly tagged scalars
            (`!!float ''`: IndexError, `!!bool x`: KeyError, `!!timestamp x`: AttributeError)."""
            try:
                return super().construct_object(node, deep=deep)
            except (SourceError, yaml.YAMLError):
                raise
            except (ValueError, TypeError, IndexError, KeyError, AttributeError, OverflowError):
                value = f"{node.value!r} " if isinstance(node, yaml.ScalarNode) else ""
                tag = node.tag.rsplit(":", 1)[-1]  # implicit too: an unquoted 2026-02-30 is read as a date
                what = {"timestamp": "date or time", "int": "integer", "float": "number", "bool": "true or false"}.get(tag, f"!!{tag}")
                raise SourceError(Location(file, node.start_mark.line + 1), f"invalid YAML: {value}is not a valid {what}") from None

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
        loader.flatten_mapping(node)
        result = LineDict()
        result.location = Location(file, node.start_mark.line + 1)
        result.key_locations = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise SourceError(Location(file, key_node.start_mark.line + 1), "a mapping key must be a plain value") from None
            if key in result:
                raise SourceError(Location(file, key_node.start_mark.line + 1), f"duplicate key {key!r}")
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_locations[key] = Location(file, key_node.start_mark.line + 1)
        return result

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
        result = LineList(loader.construct_object(child, deep=True) for child in node.value)
        result.location = Location(file, node.start_mark.line + 1)
        result.item_locations = [Location(file, child.start_mark.line + 1) for child in node.value]
        return result

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    return Loader


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return list(node.value)


def load_yaml(path: Path | str, text: str | None = None) -> Any:
    """Parse one YAML document; raise SourceError with file:line on any syntax problem."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise SourceError(Location(file, 1), f"file is not UTF-8 text ({err.reason})") from None
    try:
        return yaml.load(text, Loader=_make_loader(file))  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(p for p in (err.context, err.problem) if p)
        raise SourceError(Location(file, line), f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as err:  # a control character: str(err) spans two lines and names no line
        line = text.count("\n", 0, err.position) + 1
        what = f"#x{err.character:04x}" if isinstance(err.character, int) else repr(err.character)
        raise SourceError(Location(file, line), f"invalid YAML: unacceptable character {what}: {err.reason}") from None
    except yaml.YAMLError as err:
        raise SourceError(Location(file, 1), f"invalid YAML: {' '.join(str(err).split())}") from None


@overload
def locate(node: LineDict | LineList, loc: tuple[Any, ...] | list[Any], default: Location | None = None) -> Location: ...
@overload
def locate(node: Any, loc: tuple[Any, ...] | list[Any], default: Location) -> Location: ...
def locate(node: Any, loc: tuple[Any, ...] | list[Any], default: Location | None = None) -> Location | None:
    """The line of the deepest part of a pydantic error `loc` present in the YAML (else its parent's).

    A location always: `node` is what load_yaml returned (its mappings and lists know their line), or `default` is given."""
    where: Location | None = getattr(node, "location", default)
    for part in loc:
        if isinstance(node, LineDict) and part in node:
            where, node = node.where(part), node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and part < len(node):
            where, node = node.where(part), node[part]
        else:
            break
    return where
