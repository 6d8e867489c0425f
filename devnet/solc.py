"""Compile the project's own Solidity with the pinned solc-js (standard JSON, run under node).

Imports starting with ``@openzeppelin/``, ``@uniswap/``, ``@aave/`` or ``@morpho-org/`` are read from the
installed node_modules; source unit names stay as written, so the bytecode does not depend on where HOME is.
Output is cached under ``HOME/solc/cache`` keyed by the sources, the settings and the pinned compiler
(``solc``, or an aliased older one such as ``solc-0.8.19`` for sources that pin it).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devnet.errors import DevnetError
from devnet.npm import ensure_node_modules, lockfile_hash, node_executable, solcjs_path

CONTRACTS_DIR = Path(__file__).resolve().parent / "contracts"
NPM_PREFIXES = ("@openzeppelin/", "@uniswap/", "@aave/", "@morpho-org/")
DEFAULT_COMPILER = "solc"
COMPILE_TIMEOUT_S = 600

# Reads the standard JSON input on stdin; argv: solc-js directory, JSON map of import prefix -> directory.
_DRIVER = r"""
const fs = require("fs"), path = require("path");
const solc = require(process.argv[1]);
const remappings = JSON.parse(process.argv[2]);
function findImports(name) {
  for (const [prefix, dir] of Object.entries(remappings)) {
    if (!name.startsWith(prefix)) continue;
    const file = path.resolve(dir, name.slice(prefix.length));
    if (!file.startsWith(path.resolve(dir) + path.sep)) return { error: "import escapes " + dir };
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: "File not found: " + name };
}
const chunks = [];
process.stdin.on("data", (c) => chunks.push(c));
process.stdin.on("end", () => {
  const input = Buffer.concat(chunks).toString("utf8");
  const output = JSON.parse(solc.compile(input, { import: findImports }));
  process.stdout.write(JSON.stringify({ version: solc.version(), output }));
});
"""


class SolcError(DevnetError, RuntimeError):
    """The compiler reported errors; ``messages`` holds solc's formatted messages."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("solc failed:\n" + "\n".join(messages))
        self.messages = messages


@dataclass(frozen=True)
class CompiledContract:
    """ABI and 0x-prefixed creation/runtime bytecode of one contract."""

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def compile_project(home: Path, *, optimizer_runs: int = 200) -> dict[str, CompiledContract]:
    """Compile every ``devnet/contracts/*.sol``; returns contracts by name."""
    sources = {f"contracts/{p.name}": p.read_text() for p in sorted(CONTRACTS_DIR.glob("*.sol"))}
    return compile_sources(home, sources, optimizer_runs=optimizer_runs)


def compile_sources(
    home: Path,
    sources: Mapping[str, str],
    *,
    optimizer_runs: int = 200,
    evm_version: str = "cancun",
    remappings: Mapping[str, Path] | None = None,
    compiler: str = DEFAULT_COMPILER,
) -> dict[str, CompiledContract]:
    """Compile ``{source unit name: Solidity text}`` (imports included) and cache the result under HOME.

    ``compiler`` names the installed solc-js package (``solc-0.8.19`` for sources pinned to 0.8.19).
    Returns every contract keyed by name, or by ``source:Name`` where two sources define the same name.
    """
    standard_input = _standard_input(sources, optimizer_runs, evm_version)
    keyed = [standard_input, lockfile_hash()] + ([] if compiler == DEFAULT_COMPILER else [compiler])
    key = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()
    cache = home / "solc" / "cache" / f"{key}.json"
    if cache.is_file():
        return _contracts(json.loads(cache.read_text()))
    modules = ensure_node_modules(home)
    prefixes = {prefix: modules / prefix for prefix in NPM_PREFIXES}
    output = _run_solc(home, standard_input, {**prefixes, **(remappings or {})}, compiler)
    selected = _select(output)
    _write_atomic(cache, json.dumps(selected))
    return _contracts(selected)


def _standard_input(sources: Mapping[str, str], runs: int, evm_version: str) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": {
            "optimizer": {"enabled": True, "runs": runs},
            "evmVersion": evm_version,
            "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
        },
    }


def _run_solc(
    home: Path, standard_input: dict[str, Any], remappings: Mapping[str, Path], compiler: str
) -> dict[str, Any]:
    mapping = json.dumps({prefix: str(path) for prefix, path in remappings.items()})
    command = [node_executable(), "-e", _DRIVER, str(solcjs_path(home, compiler)), mapping]
    done = subprocess.run(
        command, input=json.dumps(standard_input).encode(), capture_output=True, timeout=COMPILE_TIMEOUT_S
    )
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")[-2000:]
        raise SolcError([f"node exited with {done.returncode}: {stderr}"])
    result: dict[str, Any] = json.loads(done.stdout)
    output: dict[str, Any] = result["output"]
    errors = [e.get("formattedMessage", e.get("message", "")) for e in output.get("errors", [])]
    fatal = [m for m, e in zip(errors, output.get("errors", []), strict=True) if e.get("severity") == "error"]
    if fatal:
        raise SolcError(fatal)
    output["compilerVersion"] = result["version"]
    return output


def _select(output: dict[str, Any]) -> dict[str, Any]:
    """Contracts keyed by name; a name defined in several sources is keyed ``source:Name`` instead."""
    found = [
        (src, name, art)
        for src, by_name in output.get("contracts", {}).items()
        for name, art in by_name.items()
    ]
    counts = Counter(name for _, name, _ in found)
    selected: dict[str, Any] = {}
    for source, name, artefact in found:
        evm = artefact["evm"]
        selected[name if counts[name] == 1 else f"{source}:{name}"] = {
            "name": name,
            "source": source,
            "abi": artefact["abi"],
            "bytecode": "0x" + evm["bytecode"]["object"],
            "deployed_bytecode": "0x" + evm["deployedBytecode"]["object"],
        }
    return selected


def _contracts(selected: Mapping[str, Any]) -> dict[str, CompiledContract]:
    return {key: CompiledContract(**fields) for key, fields in selected.items()}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, path)
