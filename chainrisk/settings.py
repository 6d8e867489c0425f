"""Settings from `CHAINRISK_*` env vars and an optional chainrisk.toml; built once in the CLI."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from indexer.config import ChainConfig, ContractConfig, LabelConfig, TokenConfig


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("chainrisk", appauthor=False))


def config_path() -> Path:
    return Path(os.environ.get("CHAINRISK_CONFIG", "chainrisk.toml"))


class Settings(BaseSettings):
    """Everything configurable. Env vars win over chainrisk.toml, which wins over defaults."""

    model_config = SettingsConfigDict(env_prefix="CHAINRISK_", extra="forbid", env_nested_delimiter="__")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None
    log_level: str = "INFO"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_addr: str = "127.0.0.1"
    chains: list[ChainConfig] = Field(default_factory=list)
    contracts: list[ContractConfig] = Field(default_factory=list)
    tokens: list[TokenConfig] = Field(default_factory=list)
    labels: list[LabelConfig] = Field(default_factory=list)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml)


class SettingsError(ValueError):
    """A configuration value is wrong; the message names the field and the expected form."""


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation errors into one readable message per bad field."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, source=str(config_path()))) from None


def describe_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration (env CHAINRISK_* or {source}):"]
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  {field}: {err['msg']}")
    return "\n".join(lines)
