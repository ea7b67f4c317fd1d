"""The driver's modules: no module imports one that imports it back (at any depth, functions'
own imports included), and the runtime dependencies are the product's, not the tests'."""

import ast
import tomllib

from helpers import ROOT

DRIVER = ROOT / "driver"


def _imports() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(DRIVER.glob("*.py")):
        module = f"driver.{path.stem}"
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("driver"):
                if node.module == "driver":
                    names |= {f"driver.{alias.name}" for alias in node.names}
                else:
                    names.add(node.module)
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names if alias.name.startswith("driver.")}
        graph[module] = {n for n in names if (DRIVER / f"{n.split('.', 1)[1]}.py").exists()} - {module}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = _imports()
    assert graph["driver.demo"] and graph["driver.cli"], "the graph is read"

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
    for path in DRIVER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("pytest", "pytest_postgresql")], path.name
