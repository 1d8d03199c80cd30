"""The structure the contributors' guide draws: layers that point down and no import cycle.

import-linter checks the layers (``lint-imports``, run by ``make test``, reading pyproject.toml);
these tests run the same contract from the suite and add what import-linter has no contract for:
no cycle of imports anywhere in our packages, function-local imports included.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_the_layers_contract_is_kept_with_no_exceptions() -> None:
    for contract in CONFIG["contracts"]:
        assert "ignore_imports" not in contract, f"{contract['name']} lists exceptions"
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [lint, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout


def test_every_package_of_ours_has_a_layer() -> None:
    layered = {
        name.strip() for layer in CONFIG["contracts"][0]["layers"] for name in layer.split("|")
    }
    packages = {
        path.parent.name
        for path in REPO.glob("*/__init__.py")
        if path.parent.name not in ("tests", "bench")
    }
    assert packages == layered == set(CONFIG["root_packages"])


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    imported = graph.find_modules_directly_imported_by(child)
                    work.append((child, iter(sorted(imported))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    sys.path.insert(0, str(REPO))
    graph = grimp.build_graph(*CONFIG["root_packages"], cache_dir=None)
    assert _cycles(graph) == []
