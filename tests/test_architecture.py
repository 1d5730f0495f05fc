"""The package's layout holds: no import cycles, no upward imports, subpackages used by their public face.

The imports are read from the source with `ast`: every import, at module level, inside a
function or under TYPE_CHECKING, so a cycle cannot hide behind a lazy import. The layers are
docs/architecture.md; a module belongs to the layer of the longest name below that matches it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

#: Lowest first. A module may import its own layer or a lower one, never a higher one.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["worker", "worker.events", "worker.notation"]),
    ("themes", ["worker.themes"]),  # comment themes: tokens, stems, matching, the root-cause model
    ("stream", ["worker.stream"]),  # Kafka bookkeeping: checkpoint, dead letters, the state topic, counters
    ("metrics", ["worker.metrics"]),
    ("rising", ["worker.rising"]),  # rising complaints' term counts per window, in the state topic
    ("tasks", ["worker.tasks"]),  # above metrics: a task's lifecycle feeds the loop KPIs (tasks/kpis.py)
    ("rules", ["worker.rules"]),
    ("alerting", ["worker.alerting"]),  # what a message says: render, cards, throttle, silences, digests
    ("plumbing", ["worker.config", "worker.broker", "worker.logs"]),
    ("delivery", ["worker.delivery"]),  # every Slack message, once
    ("interactions", ["worker.interactions"]),  # Socket Mode: a click becomes a task action
    ("keeper", ["worker.keeper"]),  # the keeper of tasks, and what it says in Slack
    ("loop", ["worker.loop"]),
    ("observability", ["worker.observability"]),
    ("wiring", ["worker.service"]),
    ("tools", ["worker.backtest", "worker.demo"]),
    ("command line", ["worker.cli", "worker.__main__"]),
]


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package under `root`."""
    found = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that module `name` imports (anywhere in the file)."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from pkg import mod` imports the module pkg.mod when there is one, else a name of pkg
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found.update(target for target in targets if target in known and target != name)
    return found


def graph(root: Path, package: str) -> dict[str, set[str]]:
    known = modules(root, package)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def layer_of(module: str, layers: list[tuple[str, list[str]]]) -> int:
    best, best_len = -1, -1
    for number, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = number, len(prefix)
    if best < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")
    return best


def upward(edges: dict[str, set[str]], layers: list[tuple[str, list[str]]]) -> list[str]:
    problems = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            low, high = layer_of(source, layers), layer_of(target, layers)
            if high > low:
                problems.append(f"{source} ({layers[low][0]}) imports {target} ({layers[high][0]})")
    return problems


def private_reaches(edges: dict[str, set[str]], subpackages: set[str]) -> list[str]:
    """Imports of a subpackage's inner module from outside it: they should go through its __init__."""
    problems = []
    for source, targets in sorted(edges.items()):
        for target in sorted(targets):
            package = next((p for p in subpackages if target.startswith(p + ".")), None)
            if package is not None and not (source == package or source.startswith(package + ".")):
                problems.append(f"{source} imports {target}: use the face of {package} (its __init__)")
    return problems


# -- the worker package -------------------------------------------------------------------------


WORKER = graph(ROOT, "worker")
SUBPACKAGES = {name for name, path in modules(ROOT, "worker").items() if path.name == "__init__.py" and name != "worker"}


def test_no_import_cycles_between_worker_modules() -> None:
    assert cycles(WORKER) == []


def test_no_lower_layer_imports_a_higher_one() -> None:
    assert upward(WORKER, LAYERS) == []


def test_subpackages_are_used_through_their_public_face() -> None:
    assert private_reaches(WORKER, SUBPACKAGES) == []


#: Longer than ~400 lines on purpose, each with its reason (docs/architecture.md).
LONG_BY_DESIGN = {
    "worker.loop.app": "the whole flow, consume to commit, read top to bottom in one module",
    "worker.delivery.outbox": "post-once's whole sequence (owe, release, post, settle, look up, take over) in one place",
}


def test_no_module_is_much_over_400_lines() -> None:
    limits = {name: 540 if name in LONG_BY_DESIGN else 440 for name in modules(ROOT, "worker")}
    long = {name: n for name, path in modules(ROOT, "worker").items() if (n := len(path.read_text().splitlines())) > limits[name]}
    assert long == {}


# -- the checks themselves catch what they are for -----------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    package = tmp_path / "pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from .high import g  # a lazy import is still an import\n")
    (package / "high.py").write_text("from . import low\nfrom .inner.detail import x\n")
    (package / "inner" / "__init__.py").write_text("from .detail import x\n")
    (package / "inner" / "detail.py").write_text("x = 1\n")
    return tmp_path


def test_the_checks_find_a_cycle_an_upward_import_and_a_private_reach(tree: Path) -> None:
    edges = graph(tree, "pkg")
    assert edges["pkg.low"] == {"pkg.high"} and edges["pkg.high"] == {"pkg.low", "pkg.inner.detail"}
    assert cycles(edges) == [["pkg.high", "pkg.low"]]
    layers = [("bottom", ["pkg", "pkg.low", "pkg.inner"]), ("top", ["pkg.high"])]
    assert upward(edges, layers) == ["pkg.low (bottom) imports pkg.high (top)"]
    assert private_reaches(edges, {"pkg.inner"}) == ["pkg.high imports pkg.inner.detail: use the face of pkg.inner (its __init__)"]


#: What only the delivery core may spell: a post record's state as a string, a slot key built or split.
SLOT_SPELLINGS = [
    re.compile(r"""["'](posted|posting)["']"""),  # a state compared or written as text (Post.is_posted, PostState)
    re.compile(r"""partition\(["']/["']\)"""),  # a slot key split by hand (parse_slot)
    re.compile(r"""f["'][^"']*\{[^}]*task_id[^}]*\}/"""),  # a slot key built by hand: f"{task_id}/..." (slots.py)
    re.compile(r"""["'](metric|root-causes):"""),  # the unbound slots' prefixes
    re.compile(r"""/(change|escalated|escalation|reopened):"""),  # the task notes' slot forms
]


def test_slot_keys_and_post_states_are_spelled_only_inside_the_delivery_core() -> None:
    """docs/architecture.md: a slot's key is built and parsed by worker/delivery/slots.py, a record's state asked
    with its methods; a second spelling elsewhere is where the next exactly-once bug would hide."""
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted((ROOT / "worker").rglob("*.py"))
        if "delivery" not in path.relative_to(ROOT / "worker").parts
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if any(pattern.search(line) for pattern in SLOT_SPELLINGS)
    ]
    assert found == []
    assert any(pattern.search((ROOT / "worker" / "delivery" / "slots.py").read_text()) for pattern in SLOT_SPELLINGS[3:]), (
        "the patterns must match the forms the delivery core does spell (else this test could not fail)"
    )


def test_the_top_of_the_package_holds_only_its_entry_points() -> None:
    """docs/architecture.md: the entry point, settings, the wiring, the event and logging; all else in a subpackage."""
    top = sorted(path.name for path in (ROOT / "worker").glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "config.py", "events.py", "logs.py", "service.py"]
