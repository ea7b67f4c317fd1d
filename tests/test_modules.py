"""The driver's layout: a few rooms (subpackages) whose imports point one way — the client core
imports nothing above it, the commands sit on top — no module imports one that imports it back
(at any depth, functions' own imports included), few modules at the top level, and the runtime
dependencies are the product's, not the tests'."""

import ast
import tomllib

from helpers import ROOT

DRIVER = ROOT / "driver"

# The rooms, lowest first: a module may import from its own room and from the rooms below it.
ROOMS = ["core", "servers", "simulation", "feeds", "scale", "bench", "dashboard", "commands"]
RANK = {"core": 0, "servers": 1, "simulation": 2, "feeds": 3, "scale": 3, "bench": 4, "commands": 5}


def _module(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    modules = {_module(path) for path in DRIVER.rglob("*.py")}
    graph = {}
    for path in sorted(DRIVER.rglob("*.py")):
        module = _module(path)
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("driver"):
                names.add(node.module)
                names |= {f"{node.module}.{alias.name}" for alias in node.names}  # (a module imported by name)
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names if alias.name.startswith("driver.")}
        graph[module] = {n for n in names if n in modules} - {module}
    return graph


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def test_the_driver_is_a_few_rooms():
    top = sorted(p.name for p in DRIVER.glob("*.py"))
    assert len(top) <= 6, top
    rooms = sorted(p.name for p in DRIVER.iterdir() if p.is_dir() and (p / "__init__.py").exists())
    assert rooms == sorted(ROOMS)
    for room in ROOMS:  # each room says what it holds
        assert ast.get_docstring(ast.parse((DRIVER / room / "__init__.py").read_text())), room


def test_imports_point_one_way():
    graph = _imports()
    assert graph["driver.commands"] and graph["driver.bench.refresh"], "the graph is read"
    wrong = []
    for module, imported in graph.items():
        room = _room(module)
        if room is None:
            continue
        for target in imported:
            other = _room(target)
            if other is not None and other != room and RANK[other] >= RANK[room]:
                wrong.append(f"{module} -> {target}")
    assert wrong == [], wrong
    assert all(_room(t) in ("core", None) for m, ts in graph.items() if _room(m) == "core" for t in ts)


def test_no_module_imports_one_that_imports_it_back():
    graph = _imports()

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target or (nxt not in seen and reaches(nxt, target, seen | {nxt})):
                return True
        return False

    cycles = sorted(m for m in graph if reaches(m, m, {m}))
    assert cycles == []


def test_test_tooling_is_not_a_runtime_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "pytest" not in runtime
    assert any(d.startswith("pytest-postgresql") for d in project["optional-dependencies"]["dev"])
    for path in DRIVER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("pytest", "pytest_postgresql", "yaml")], path.name


def test_every_public_function_of_the_driver_says_what_it_does():
    missing = []
    for path in sorted(DRIVER.rglob("*.py")):
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{path.relative_to(ROOT)}: no module docstring"
        for node in tree.body:
            members = node.body if isinstance(node, ast.ClassDef) else []
            for item in [node, *members]:
                if isinstance(item, ast.FunctionDef | ast.ClassDef) and not item.name.startswith("_"):
                    if not ast.get_docstring(item):
                        missing.append(f"{path.relative_to(ROOT)}: {item.name}")
    assert missing == [], missing
