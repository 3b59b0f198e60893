"""The shape of the code: no import cycles, and the stages of DESIGN.md §2 import only
downwards (the layers contract in pyproject.toml, which `make check` runs too)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def _cycles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for other in sorted(imports[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_a_cycle_and_nothing_else() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def strategies_importers() -> dict[str, int]:
    """Modules of ``fuzzer/`` that import ``fuzzer.strategies`` (line numbers): installed
    from ``strategies/`` (pyproject's package-dir), it is not under ``fuzzer/`` on disk,
    where grimp looks, so these imports are read here."""
    found = {}
    for path in sorted((ROOT / "fuzzer").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n == "fuzzer.strategies" or n.startswith("fuzzer.strategies.") for n in names):
                found.setdefault(module, node.lineno)
    return found


def test_no_module_of_the_project_imports_itself_back() -> None:
    # lazy imports inside functions and imports for type checking count too
    graph = grimp.build_graph("fuzzer", "strategies", cache_dir=None)
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    for module in strategies_importers():
        imports[module].add("strategies")
    assert _cycles(imports) == []


def test_the_strategies_are_imported_only_from_the_layers_above_them() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    rank = {
        name: i
        for i, layer in enumerate(contract["layers"])
        for name in re.split(r"\s*[|:]\s*", layer)
    }
    importers = strategies_importers()
    assert importers  # the search draws its scenarios from them
    for module, line in importers.items():
        layer = max((n for n in rank if module == n or module.startswith(n + ".")), key=len)
        assert rank[layer] < rank["strategies"], f"{module}:{line} imports fuzzer.strategies"


def test_the_layers_contract_holds() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert re.search(r"\b[1-9][0-9]* kept, 0 broken", result.stdout), result.stdout[-3000:]


def test_the_api_is_a_facade_above_the_modes() -> None:
    # api.py defines nothing: it re-exports what fuzzer/modes/ does, so it can sit above
    # the modes in the layers (which then never import it)
    tree = ast.parse((ROOT / "fuzzer" / "api.py").read_text(encoding="utf-8"))
    defined = [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    ]
    assert defined == []
    sources = {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert sources - {"__future__", "fuzzer.settings"}
    assert all(
        s in ("__future__", "fuzzer.settings") or (s or "").startswith("fuzzer.modes.")
        for s in sources
    ), sources
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = config["tool"]["importlinter"]["contracts"]
    assert contract["layers"].index("fuzzer.api") < contract["layers"].index("fuzzer.modes")
