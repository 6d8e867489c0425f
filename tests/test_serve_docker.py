"""The image and the compose file, checked without a Docker engine: what they run exists, what they set is
something the settings or the commands read, and nothing depends on a file that may not exist."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path
from typing import Any

import typer
import yaml

from chainrisk.cli import app
from chainrisk.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return body


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def _commands() -> dict[tuple[str, ...], Any]:
    """Every command path of the CLI, e.g. ('db', 'grant-reader')."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found[path] = command
        for name, sub in getattr(command, "commands", {}).items():  # a group
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def _known_env() -> set[str]:
    """Env vars chainrisk reads: one per setting, and those its commands' options take."""
    settings = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    options = {
        env
        for command in _commands().values()
        for param in command.params
        for env in ([param.envvar] if isinstance(param.envvar, str) else list(param.envvar or []))
    }
    return settings | options


def _chainrisk_calls(script: str) -> list[tuple[str, ...]]:
    """The subcommand path of every `chainrisk …` call in a shell line (up to its first option)."""
    calls = []
    for part in re.split(r"&&|;|\bthen\b", script):
        words = shlex.split(part.replace("$$", "$"))
        while words and words[0] in ("exec", "if", "fi"):
            words = words[1:]
        if words and words[0] == "chainrisk":
            calls.append(tuple(w for w in words[1:] if not w.startswith(("-", "$", "{"))))
    return calls


def test_compose_runs_migrate_grant_reader_and_serve_which_exist() -> None:
    service = _compose()["services"]["chainrisk"]
    script = service["command"][-1]
    commands = _commands()
    calls = _chainrisk_calls(script)
    assert [c[:2] for c in calls] == [("migrate",), ("db", "grant-reader"), ("serve",)]
    for call in calls:
        path = call[:2] if call[0] == "db" else call[:1]
        assert path in commands, call
    assert script.rstrip().endswith("exec chainrisk serve")  # the service itself gets docker's SIGTERM


def test_compose_sets_only_variables_chainrisk_reads() -> None:
    compose = _compose()
    assert compose["services"]["postgres"]["image"] == "postgres:16"
    env = compose["services"]["chainrisk"]["environment"]
    ours = {name for name in env if name.startswith(ENV_PREFIX)}
    assert ours and ours <= _known_env(), ours - _known_env()
    assert env["CHAINRISK_SERVE_PORT"] == "9108" and env["CHAINRISK_SERVE_ADDR"] == "0.0.0.0"


def test_compose_mounts_a_config_folder_never_a_file_that_may_be_missing() -> None:
    service = _compose()["services"]["chainrisk"]
    targets = [volume.removesuffix(":ro").rsplit(":", 1)[1] for volume in service["volumes"]]
    assert not any(".toml" in volume for volume in service["volumes"])
    assert service["working_dir"] in targets  # ./chainrisk.toml is read from there, when present
    assert "CHAINRISK_CONFIG" not in service["environment"]  # which would have to exist


def test_dockerfile_runs_real_commands_as_an_unprivileged_user() -> None:
    steps = _dockerfile()
    cmd = json.loads(next(args for op, args in steps if op == "CMD"))
    assert cmd[0] == "chainrisk" and tuple(cmd[1:]) in _commands()
    healthcheck = next(args for op, args in steps if op == "HEALTHCHECK")
    probe = json.loads(healthcheck.split("CMD", 1)[1])
    assert probe[:2] == ["python", "-m"] and importlib.util.find_spec(probe[2]) is not None
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    [expose] = [args for op, args in steps if op == "EXPOSE"]
    assert int(expose) == Settings.model_fields["serve_port"].default


def test_dockerfile_installs_at_build_time_from_sources_that_exist() -> None:
    steps = _dockerfile()
    assert ("ARG", "TORCH_INDEX_URL") in steps  # no default: the builder names the index
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert '--index-url "$TORCH_INDEX_URL" torch==2.13.0' in runs
    assert "pip install ." in runs and "pip install -e" not in runs
    for op, args in steps:
        if op == "COPY":
            for source in args.split()[:-1]:
                assert (ROOT / source).exists(), source
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".chainrisk", "tests"} <= set(ignored)
