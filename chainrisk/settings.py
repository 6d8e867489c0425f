"""Settings from `CHAINRISK_*` env vars and an optional chainrisk.toml; built once in the CLI.

Every mistake in them is answered by one `SettingsError` naming where it is (the env var or the TOML key),
the value (secrets in URLs redacted) and what is expected.
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import platformdirs
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

from chainrisk.alerts.channels_config import ChannelConfig
from chainrisk.alerts.rules_config import AlertRuleConfig
from chainrisk.contagion.config import ContagionConfig
from chainrisk.errors import ChainriskError
from chainrisk.reports.config import ReportConfig, check_channels
from chainrisk.serve.config import ServeConfig, check_assets
from indexer.config import (
    ChainConfig,
    ContractConfig,
    LabelConfig,
    MorphoOracleConfig,
    TokenConfig,
    check_morpho_oracles,
    check_tables,
)

CONFIG_ENV = "CHAINRISK_CONFIG"
DEFAULT_CONFIG = Path("chainrisk.toml")
ENV_PREFIX = "CHAINRISK_"


class SettingsError(ChainriskError, ValueError):
    """A configuration value is wrong; the message names the field, the value and the expected form."""


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("chainrisk", appauthor=False))


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV, str(DEFAULT_CONFIG)))


class Settings(BaseSettings):
    """Everything configurable. Env vars win over chainrisk.toml, which wins over defaults."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", env_nested_delimiter="__")

    home: Path = Field(default_factory=default_home)
    database_url: str | None = None
    log_level: str = "INFO"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_addr: str = "127.0.0.1"
    chains: list[ChainConfig] = Field(default_factory=list)
    contracts: list[ContractConfig] = Field(default_factory=list)
    tokens: list[TokenConfig] = Field(default_factory=list)
    labels: list[LabelConfig] = Field(default_factory=list)
    # [[morpho_oracles]]: how each Morpho Blue oracle prices, to rebuild price() from the indexed feeds.
    morpho_oracles: list[MorphoOracleConfig] = Field(default_factory=list)
    # `chainrisk serve`: /healthz and /metrics on one port; [serve] holds job schedules and assets.
    serve_port: int = Field(default=9108, ge=0, le=65535)
    serve_addr: str = "127.0.0.1"
    serve: ServeConfig = Field(default_factory=ServeConfig)
    # [contagion]: where `contagion var` runs its scenario batches.
    contagion: ContagionConfig = Field(default_factory=ContagionConfig)
    # [[channels]] deliver alerts; [[alerts]] say what to watch and which channels to tell.
    channels: list[ChannelConfig] = Field(default_factory=list)
    alerts: list[AlertRuleConfig] = Field(default_factory=list)
    # [report]: the `report` job's period, folder, link and the channels that announce it.
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _report_channels(self) -> Settings:
        check_channels(self.report, self.channels)
        return self

    @field_validator("home", mode="before")
    @classmethod
    def _home(cls, value: object) -> object:
        # Path("") is the working directory: an empty value is a mistake, not a wish for "."
        if isinstance(value, str | Path) and not str(value).strip():
            raise ValueError("empty; expected a directory path (or leave it unset for the default)")
        return value

    @model_validator(mode="after")
    def _tables(self) -> Settings:
        check_tables(self.chains, self.contracts, self.tokens, self.labels)
        return self

    @model_validator(mode="after")
    def _morpho_oracles(self) -> Settings:
        check_morpho_oracles(self.chains, self.morpho_oracles)
        return self

    @model_validator(mode="after")
    def _serve_assets(self) -> Settings:
        chains = {chain.name: chain.chain_id for chain in self.chains}
        tokens = {(t.chain, key): t.address for t in self.tokens for key in (t.symbol, t.address)}
        check_assets(self.serve.assets, chains, tokens)
        return self

    @model_validator(mode="after")
    def _alert_rules(self) -> Settings:
        # A rule's channels and chain must exist; rule names are the outbox's dedup keys' first part.
        channels = [c.name for c in self.channels]
        twice = sorted({name for name in channels if channels.count(name) > 1})
        if twice:
            raise ValueError(f"[[channels]] {twice[0]!r}: two channels have this name; expected unique names")
        chains = {c.name: c.chain_id for c in self.chains}
        seen: set[str] = set()
        for rule in self.alerts:
            if rule.name in seen:
                raise ValueError(f"[[alerts]] {rule.name!r}: two rules have this name; expected unique names")
            seen.add(rule.name)
            for name in rule.channels:
                if name not in channels:
                    known = ", ".join(channels) if channels else "none; add a [[channels]] entry"
                    raise ValueError(
                        f"[[alerts]] {rule.name!r}: unknown channel {name!r}; configured channels: {known}"
                    )
            if rule.chain is not None and not rule.chain.isdigit():
                if rule.chain not in chains:
                    known = ", ".join(chains) if chains else "none"
                    raise ValueError(
                        f"[[alerts]] {rule.name!r}: unknown chain {rule.chain!r}; chains: {known}"
                    )
                rule.resolve_chain(chains[rule.chain])
        return self

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


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning any mistake into one SettingsError of one line."""
    source = check_config_file()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, source=source)) from None
    except SourceError as exc:  # an env var that should hold JSON (a list of tables) does not
        cause = f": {exc.__cause__}" if exc.__cause__ else ""
        raise SettingsError(f"{exc}{cause}; expected a JSON value") from None


def check_config_file() -> str:
    """The config file's name for messages, after checking it can be read as TOML.

    CHAINRISK_CONFIG, when set, must name an existing file: a typo there would otherwise run on defaults.
    The default ./chainrisk.toml may be absent.
    """
    raw = os.environ.get(CONFIG_ENV)
    if raw is not None and not raw.strip():
        raise SettingsError(f"{CONFIG_ENV} is set but empty: point it at a TOML file or unset it")
    path = Path(raw) if raw is not None else DEFAULT_CONFIG
    where = f"{CONFIG_ENV}={raw}" if raw is not None else f"./{DEFAULT_CONFIG}"
    if "\0" in str(path):
        raise SettingsError(f"{where!r}: the path contains a NUL byte; expected a file path")
    if not path.exists():
        if raw is None:
            return str(DEFAULT_CONFIG)
        raise SettingsError(
            f"{where}: no such file; expected a TOML file (see chainrisk.example.toml), or unset"
            f" {CONFIG_ENV} to read ./{DEFAULT_CONFIG} when present"
        )
    if path.is_dir():
        raise SettingsError(f"{where}: is a directory; expected a TOML file")
    _parse_toml(path, where)
    return str(path)


def _parse_toml(path: Path, where: str) -> None:
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{where}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SettingsError(f"{where}: cannot read it: {exc.strerror}") from None


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One line: the first error with its field, value and expected form, and how many more there are."""
    # An unknown key usually explains the rest (a misspelt required key is also "missing"): it goes first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    message = _describe(errors[0], source)
    return message + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else "")


def _describe(err: ErrorDetails, source: str) -> str:
    loc = tuple(err["loc"])
    if not loc:  # a model validator: its message names the entry already
        return f"{source}: {_reason(err)}"
    field = ".".join(str(p) for p in loc)
    where = _where(loc, source)
    if err["type"] == "extra_forbidden":
        return f"{where}: {field}: unknown key {str(loc[-1])!r}{_suggestion(loc)}"
    if err["type"] == "missing":
        return f"{where}: {field}: missing; this key is required"
    reason = _reason(err)
    value = _redact(err["input"]) if any("url" in str(part) for part in loc) else err["input"]
    # Validators that name the value already need no second copy of it.
    if _named(value, reason):
        return f"{where}: {field}: {reason}"
    return f"{where}: {field} = {value!r}: {reason}"


def _named(value: object, reason: str) -> bool:
    if isinstance(value, str):
        return len(value) >= 6 and value in reason
    if isinstance(value, list) and value:
        return all(_named(v, reason) for v in value)
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return repr(value["name"]) in reason  # an entry's validator that names the entry
    return False


def _where(loc: tuple[int | str, ...], source: str) -> str:
    # A nested key may come from CHAINRISK_SERVE__JOBS__HEARTBEAT__INTERVAL: the longest such name wins.
    for depth in range(len(loc), 0, -1):
        env = ENV_PREFIX + "__".join(str(part).upper() for part in loc[:depth])
        if env in os.environ:
            return f"env {env}"
    return source


def _reason(err: ErrorDetails) -> str:
    # Custom validators raise ValueError, which pydantic prefixes; the rest already read as expectations.
    return err["msg"].removeprefix("Value error, ")


def _redact(value: object) -> object:
    from indexer.chain import redact_url

    if isinstance(value, str):
        try:
            return redact_url(value)
        except ValueError:
            return "***"
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


def _suggestion(loc: tuple[int | str, ...]) -> str:
    known = _known_keys(loc[:-1])
    if not known:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (known keys: {', '.join(known)})"


def _known_keys(path: tuple[int | str, ...]) -> list[str]:
    """The field names of the model at `path` inside Settings (following list items by index)."""
    model: type[BaseModel] | None = Settings
    for part in path:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field is not None else None
    return sorted(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, Union, types.UnionType):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
