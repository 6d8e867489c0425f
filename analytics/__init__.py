"""Volatility and regime forecasts from prices and on-chain signals."""
