"""core/'s layers: every import of every module in core/ (top level and inside functions) obeys
the rules in core/__init__.py's docstring. A broken rule fails with the module, the import and the rule."""

import ast

import pytest
from conftest import ROOT

CORE = ROOT / "core"
BASE = {"config", "units", "atomic", "jsonfile", "schedule"}  # import only each other
# layer -> the layers it may import besides itself and BASE
ALLOWED = {
    "config": set(),
    "units": set(),
    "atomic": set(),
    "jsonfile": set(),
    "schedule": set(),
    "device": set(),
    "data": set(),
    "model": set(),
    "store": {"device", "data", "model"},
    "dynamics": {"device", "data", "model", "store"},
    "generate": {"device", "data", "model", "store", "dynamics"},
    "inspect": {"device", "data", "model", "store", "dynamics"},
    "train": {"device", "data", "model", "store", "dynamics", "generate", "runs"},
    "runs": {"device", "data", "model", "store"},
}
WHY = {
    "generate": "generate and inspect never import each other",
    "inspect": "generate and inspect never import each other",
    "train": "train never imports inspect",
    "runs": "runs never imports train: it spawns the engine's process",
}


def layer_of(module: str) -> str:
    """'core.data.walker' -> 'data'; 'core.config' -> 'config'."""
    return module.split(".")[1]


def core_modules() -> list[str]:
    return sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py"
    )


def imports_of(module: str) -> list[str]:
    """Every module an import statement in `module` names, at any depth of the file."""
    path = ROOT / (module.replace(".", "/") + ".py")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
            if node.module == "core":  # `from core import data` names a layer
                found += [f"core.{a.name}" for a in node.names]
    return found


def broken_rules(module: str, imported: list[str]) -> list[str]:
    """The rules that `module` breaks by importing each of `imported`."""
    own = layer_of(module)
    problems = []
    for name in imported:
        top = name.split(".")[0]
        if top in ("streamlit", "dashboard"):
            problems.append(f"{module} imports {name}: core never imports streamlit or dashboard")
        if top != "core" or name == "core":
            continue
        other = layer_of(name)
        if other == own or other in BASE or other in ALLOWED[own]:
            continue
        rule = WHY.get(own, f"{own} may import only {sorted(ALLOWED[own] | BASE)}")
        problems.append(f"{module} imports {name}: {rule}")
    return problems


def test_every_core_module_belongs_to_a_known_layer():
    assert {layer_of(m) for m in core_modules()} <= set(ALLOWED)


@pytest.mark.parametrize("module", core_modules())
def test_imports_follow_the_layer_rules(module):
    assert broken_rules(module, imports_of(module)) == []


def test_the_checker_catches_a_broken_rule():
    def rules(module, imported):
        return " ".join(broken_rules(module, [imported]))

    assert "train never imports inspect" in rules("core.train.x", "core.inspect.attention")
    assert "runs never imports train" in rules("core.runs.x", "core.train.engine")
    assert "never imports streamlit" in rules("core.data.x", "streamlit")
    assert "data may import only" in rules("core.data.x", "core.store.rundir")
    assert "never import each other" in rules("core.generate.x", "core.inspect.surprise")
    assert rules("core.inspect.x", "core.store.checkpoint") == ""
