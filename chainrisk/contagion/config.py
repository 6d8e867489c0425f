"""The `[contagion]` table of chainrisk.toml: where scenario batches run.

Light on purpose (settings load for every command): pydantic and a regular expression, nothing more.

    [contagion]
    dask = "tcp://10.0.0.5:8786"   # a Dask scheduler; absent: scenarios run in process
    # what the `contagion` job of `chainrisk serve` runs (`[serve.jobs.contagion]` switches it on):
    scenarios = 10000
    method = "t"                   # or "fhs"
    horizon = "1d"                 # "3d", "7d"
    engine = "exact"               # or "fast", or "surrogate" (needs `chainrisk contagion train` first)
    stress_days = true             # add the five named stress days
    # chain_id = 1                 # needed when more than one chain has Aave pools indexed
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ADDRESS = re.compile(r"^(tcp|tls|ws|wss)://[^\s/]+:\d{1,5}$")
ADDRESS_HINT = (
    "a Dask scheduler address, e.g. tcp://127.0.0.1:8786 (scheme tcp, tls, ws or wss, host and port)"
)


def valid_address(address: str) -> bool:
    return _ADDRESS.match(address) is not None


class ContagionConfig(BaseModel):
    """`[contagion]`: ``dask``, the scheduler that `contagion var` sends its scenario batches to."""

    model_config = ConfigDict(extra="forbid")

    dask: str | None = None
    scenarios: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    method: Literal["t", "fhs"] = "t"
    horizon: Literal["1d", "3d", "7d"] = "1d"
    engine: Literal["exact", "fast", "surrogate"] = "exact"
    stress_days: bool = True
    chain_id: Annotated[int | None, Field(ge=1)] = None

    @field_validator("dask")
    @classmethod
    def _dask(cls, value: str | None) -> str | None:
        if value is not None and not valid_address(value):
            raise ValueError(f"expected {ADDRESS_HINT}")
        return value
