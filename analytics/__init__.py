"""Volatility and regime forecasts from prices and on-chain signals."""

from analytics.service import SERVICE_MODEL, SERVICE_MODELS, SERVICE_REGIME_MODEL

__all__ = ["SERVICE_MODEL", "SERVICE_MODELS", "SERVICE_REGIME_MODEL"]
