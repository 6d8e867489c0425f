"""The models a service that keeps forecasts current should run, and why.

The evidence is the out-of-sample comparison in docs/FORECASTING.md ("Recalibration as data arrive"):
ETH and BTC daily 2020–2022 and ETH hourly aggregated to days, one day ahead, every hyper-parameter chosen
on the year before the window.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SERVICE_MODEL", "SERVICE_MODELS", "SERVICE_REGIME_MODEL"]

SERVICE_MODEL: Final = "log-har-rls"
"""log-HAR with a conjugate (normal–inverse-gamma) update of its coefficients on every bar.

Why this one: no model in the comparison beats it significantly on any series, and it is in the model
confidence set on all four (ETH, BTC, ETH hourly with the range and with realised variance), level with
log-HAR (the same QLIKE to 0.1%, DM p ≥ 0.25) and 10–26% below GARCH-t. It has no refit schedule: each bar
costs one rank-one update, so a service's forecast is current the moment the bar closes. It needs no
on-chain file: the ridge HAR-X over the on-chain columns is as good (within 0.2% of log-HAR) but no better,
so the dependency buys nothing. Its forgetting factor is re-chosen on the last year at every run
(`analytics.recalibration`); on every series tested that choice was 1, no forgetting, which is why it
matches log-HAR refitted daily. Where recalibration lost (forgetting below 1 on the pre-window years; the
online HMM against its periodic refit on ETH) is in the docs.
"""

SERVICE_REGIME_MODEL: Final = "markov"
"""The two-state Markov-switching filter, re-estimated every 30 days.

The online HMM (`hmm-online`) also flags every stress date, but with its short chosen memory it calls the
turbulent regime on 29–40% of days instead of 10–16%, and its variance forecasts lose to the periodically
re-estimated HMM on three of the four series; the switching-variance filter stays the default.
"""

SERVICE_MODELS: Final = (SERVICE_MODEL, "garch-t", "ewma")
"""What `chainrisk forecast run` writes when no models are named: the service model and two references."""
