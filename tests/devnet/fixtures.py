"""Devnet fixtures: a persistent CHAINRISK_HOME for npm tools and one anvil per test session.

tests/conftest.py imports these (``from tests.devnet.fixtures import anvil, devnet_home``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devnet.anvil import Anvil

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def devnet_home() -> Path:
    """CHAINRISK_HOME for devnet tests; stable across runs so node_modules and compiled output persist."""
    home = Path(os.environ.get("CHAINRISK_TEST_HOME", ROOT / ".chainrisk" / "test-home"))
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def anvil(devnet_home: Path) -> Iterator[Anvil]:
    """One automining anvil shared by the session; tests that rewind the chain start their own."""
    with Anvil(devnet_home) as node:
        yield node
