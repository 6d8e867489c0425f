"""What `chainrisk serve` checks before it touches the database: each refusal is one line naming the key.

Settings checked the shapes already; here are the checks that read files, the model list of `analytics`
or the network (the status port), which settings must not do for every command.
"""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING

from chainrisk.serve.jobs import ScheduledJob

if TYPE_CHECKING:
    from chainrisk.settings import Settings
    from indexer.runner import Plan


def check_service(
    settings: Settings, jobs: list[ScheduledJob], *, follow: bool, status_port: bool
) -> list[Plan]:
    """The indexing plans of the configured chains, after checking chains, assets and the status port."""
    from chainrisk.settings import SettingsError, check_config_file
    from indexer.runner import config_plan

    source = check_config_file()
    idle = [c.name for c in settings.chains if not any(k.chain == c.name for k in settings.contracts)]
    if idle:
        raise SettingsError(
            f"{source}: chain {idle[0]!r} has no [[contracts]] entry: add one with chain = {idle[0]!r},"
            " or remove the chain"
        )
    if any(job.asset is not None for job in jobs):
        _check_assets(settings, source)
    if status_port and settings.serve_port:
        from chainrisk.inputs import free_port

        env = "CHAINRISK_SERVE_PORT"
        free_port(env if env in os.environ else "serve_port", settings.serve_port, settings.serve_addr)
    return [config_plan(chain, settings.contracts, None, follow) for chain in settings.chains]


def _check_assets(settings: Settings, source: str) -> None:
    """Price files exist; models and regime models are ones `analytics` knows."""
    from analytics.report import MODEL_NAMES, REGIME_MODELS
    from chainrisk.settings import SettingsError

    for i, asset in enumerate(settings.serve.assets):
        where = f"{source}: serve.assets.{i}"
        if asset.prices is not None and not asset.prices.is_file():
            what = "is a directory" if asset.prices.is_dir() else "price file not found"
            raise SettingsError(
                f"{where}.prices {str(asset.prices)!r}: {what}; expected an existing price file"
            )
        for name in asset.models or ():
            if name not in MODEL_NAMES:
                raise SettingsError(f"{where}.models: unknown model {name!r}{_closest(name, MODEL_NAMES)}")
        if asset.regime_model is not None and asset.regime_model not in REGIME_MODELS:
            raise SettingsError(
                f"{where}.regime_model: unknown regime model {asset.regime_model!r}"
                f"{_closest(asset.regime_model, tuple(REGIME_MODELS))}"
            )


def _closest(name: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (known: {', '.join(known)})"
