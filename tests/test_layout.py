"""The import direction, checked rather than remembered: chainrisk → analytics → graph → indexer.

A package may import the packages below it, never one above; `devnet` makes chain activity and imports
none of the four (the app shell may drive it); nothing but tests and the app's own Alembic environment
(migrations/, run by `chainrisk migrate`) imports `chainrisk`. Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("indexer", "graph", "analytics", "chainrisk")  # each may import the ones before it
PACKAGES = (*LAYERS, "devnet")


def _imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


def _allowed(package: str) -> set[str]:
    if package == "devnet":
        return {"devnet"}
    if package == "chainrisk":
        return set(PACKAGES)
    return set(LAYERS[: LAYERS.index(package) + 1])


def _violations() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for imported in sorted(_imported_packages(path) - _allowed(package)):
                found.append(f"{path.relative_to(ROOT)} imports {imported}")
    return found


def test_packages_import_only_downwards() -> None:
    assert _violations() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from chainrisk.db import connect\n    import graph.hf_engine\n")
    assert _imported_packages(module) == {"chainrisk", "graph"}
    assert "chainrisk" not in _allowed("analytics") and "graph" not in _allowed("indexer")
    assert _allowed("devnet") == {"devnet"}
