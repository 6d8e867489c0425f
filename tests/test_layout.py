"""The import direction, checked rather than remembered: chainrisk → analytics → graph → indexer.

A package may import the packages below it, never one above; `devnet` makes chain activity and imports
none of the four (the app shell may drive it); nothing but tests and the app's own Alembic environment
(migrations/, run by `chainrisk migrate`) imports `chainrisk`. Imports inside functions count too.

Inside the app shell, commands import `chainrisk.context` and `chainrisk.cli` imports the commands, never
the other way round; a command only parses, calls and prints, so it stays short.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

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


# ------------------------------------------------------------------------------------------- the CLI

COMMANDS = ROOT / "chainrisk" / "commands"
# A command parses its options, calls the package that does the work and prints; the options count.
MAX_COMMAND_LINES = 45


def _callbacks(app: typer.Typer) -> list[Callable[..., Any]]:
    """Every function the app and its sub-apps run: commands and group callbacks."""
    found = [info.callback for info in app.registered_commands if info.callback is not None]
    if app.registered_callback is not None and app.registered_callback.callback is not None:
        found.append(app.registered_callback.callback)
    for group in app.registered_groups:
        assert group.typer_instance is not None
        found += _callbacks(group.typer_instance)
    return found


def _length(function: Callable[..., Any]) -> int:
    """Lines from `def` through the function's last line (decorators not counted, the docstring counted)."""
    path = Path(inspect.getsourcefile(function) or "")
    code = inspect.unwrap(function).__code__
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        # A decorated function's code starts at its first decorator, the def a few lines below.
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == code.co_name:
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if first == code.co_firstlineno:
                assert node.end_lineno is not None
                return node.end_lineno - node.lineno + 1
    raise AssertionError(f"no definition of {code.co_name} in {path}")


def _long_commands(app: typer.Typer, limit: int = MAX_COMMAND_LINES) -> list[str]:
    lengths = {f"{f.__module__}.{f.__qualname__}": _length(f) for f in _callbacks(app)}
    return sorted(f"{name}: {n} lines" for name, n in lengths.items() if n > limit)


def test_commands_are_short() -> None:
    from chainrisk.cli import app

    assert len(_callbacks(app)) > 30  # every sub-app is seen
    assert _long_commands(app) == []


def test_the_check_sees_a_long_command(tmp_path: Path) -> None:
    app, sub = typer.Typer(), typer.Typer()
    app.add_typer(sub, name="sub")
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_COMMAND_LINES))
    source = f"import typer\n\n\ndef long() -> None:\n{body}\n"
    path = tmp_path / "long_command.py"
    path.write_text(source)
    namespace: dict[str, Any] = {"__name__": "long_command"}
    exec(compile(source, str(path), "exec"), namespace)
    sub.command()(namespace["long"])
    assert _long_commands(app) == [f"long_command.long: {MAX_COMMAND_LINES + 1} lines"]
    assert _long_commands(app, limit=MAX_COMMAND_LINES + 1) == []


def _imports_the_cli(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import) and any(a.name == "chainrisk.cli" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            if node.module == "chainrisk.cli":
                return True
            if node.module == "chainrisk" and any(a.name == "cli" for a in node.names):
                return True
    return False


def test_commands_never_import_the_cli() -> None:
    """Commands reach the settings and the database through chainrisk.context; cli.py imports them."""
    assert sorted(COMMANDS.glob("*.py"))
    offenders = [p.relative_to(ROOT) for p in sorted(COMMANDS.rglob("*.py")) if _imports_the_cli(p)]
    assert offenders == []


def test_only_the_entry_point_imports_the_cli() -> None:
    allowed = {ROOT / "chainrisk" / "cli.py", ROOT / "chainrisk" / "__main__.py"}
    paths = sorted(set((ROOT / "chainrisk").rglob("*.py")) - allowed)
    assert [p.relative_to(ROOT) for p in paths if _imports_the_cli(p)] == []


def test_the_check_sees_an_import_of_the_cli(tmp_path: Path) -> None:
    for line in ("from chainrisk.cli import app", "import chainrisk.cli", "from chainrisk import cli"):
        module = tmp_path / "m.py"
        module.write_text(f"def f():\n    {line}\n")
        assert _imports_the_cli(module), line
    module.write_text("from chainrisk.context import app_context\nfrom chainrisk import clients\n")
    assert not _imports_the_cli(module)
