"""The house's rules, read from the source with ``ast`` (every import counts, a lazy one inside a
function too):

- ``mlzoo/base/`` (what a concept inherits) imports nothing else of the zoo;
- concepts, nets, data, rl, lm, metrics and callbacks never import the run wing (``mlzoo/run/``)
  or the package's front (``mlzoo.load``, which reaches the run wing);
- no module of the package takes part in an import cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mlzoo"
LOWER = ("base", "models", "nets", "data", "rl", "lm", "metrics", "callbacks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every zoo module ``path`` imports, anywhere in the file (``from a import b`` is a.b when
    b is a module, else a)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "mlzoo"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != "mlzoo":
                continue
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return found


GRAPH = {name: imports(path) & MODULES.keys() for name, path in MODULES.items()}


def wing(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "front"


def test_the_walk_sees_the_house():
    """The walk finds the wings and the arrows it is meant to judge (a walk that reads nothing
    would pass every rule)."""
    assert {"mlzoo.base.module", "mlzoo.run.train", "mlzoo.models.dqn"} <= MODULES.keys()
    assert "mlzoo.base.module" in GRAPH["mlzoo.models.mlp"]
    assert "mlzoo.run.build" in GRAPH["mlzoo.run.train"]


@pytest.mark.parametrize("lower", LOWER)
def test_lower_layers_never_import_the_run_wing(lower):
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if wing(name) == lower
        for target in targets
        if wing(target) in ("run", "front")
    )
    assert not wrong, "a lower layer reaches the run wing: " + "; ".join(wrong)


def test_the_base_imports_nothing_else_of_the_zoo():
    wrong = sorted(
        f"{name} imports {target}"
        for name, targets in GRAPH.items()
        if wing(name) == "base"
        for target in targets
        if wing(target) != "base"
    )
    assert not wrong, "mlzoo/base/ must stand on its own: " + "; ".join(wrong)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (or a self-import):
    Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_cycles_are_found_when_there_are_some():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


# Private names of other libraries the zoo reaches for, where their public API has no way:
# torch's fused in-place lerp over a list of tensors (the EMA), torch's batch-norm base class,
# gymnasium's lazily created RNG; public names with an underscore: OmegaConf's _target_ keys (a
# Hydra convention) and a NamedTuple's _replace, _asdict, _fields.
NOT_A_FRAMEWORK_INTERNAL = {"_foreach_lerp_", "_BatchNorm", "_np_random", "_target_"}
NOT_A_FRAMEWORK_INTERNAL |= {"_replace", "_asdict", "_fields"}
FRAMEWORKS = ("lightning", "pytorch_lightning", "hydra", "omegaconf")


def private_uses(path: Path) -> list[str]:
    """Imports of a private module of Lightning, Hydra or OmegaConf, and attributes with a leading
    underscore read from anything but the module's own ``self``/``cls``/``super()`` (plus a
    LightningModule's ``self._trainer``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] in FRAMEWORKS and any(p.startswith("_") for p in parts[1:]):
                found.append(f"{path.name}:{node.lineno} imports {name}")
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_"):
            continue
        if node.attr.startswith("__") or node.attr in NOT_A_FRAMEWORK_INTERNAL:
            continue
        owner = node.value
        own = isinstance(owner, ast.Name) and owner.id in ("self", "cls")
        if own and node.attr != "_trainer":
            continue
        if isinstance(owner, ast.Call) and getattr(owner.func, "id", "") == "super":
            continue
        found.append(f"{path.name}:{node.lineno} reads .{node.attr}")
    return found


def test_framework_internals_live_in_one_file():
    """mlzoo/run/private.py is the one file allowed a private name; everything else of the
    package and scripts/ keeps to public APIs."""
    private = PACKAGE / "run" / "private.py"
    files = [p for p in [*PACKAGE.rglob("*.py"), *(ROOT / "scripts").glob("*.py")] if p != private]
    found = [use for path in files for use in private_uses(path)]
    assert not found, "private framework names outside mlzoo/run/private.py: " + "; ".join(found)
    assert private_uses(private), "the check reads nothing (private.py's own uses are not seen)"


def test_the_private_names_we_rely_on_still_exist():
    """A new Lightning or Hydra that moves a private name the zoo needs fails here, by name,
    instead of somewhere deep in a run."""
    import importlib

    from mlzoo.run.private import PRIVATE_NAMES

    for module, attribute in PRIVATE_NAMES:
        try:
            found: object = importlib.import_module(module)
            for part in attribute.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as err:
            pytest.fail(
                f"{module}.{attribute} is gone in this version ({err}): mlzoo/run/private.py "
                "says what it stands in for; find the new name or a public hook"
            )
