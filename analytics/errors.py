"""The one exception root of the analytics package.

Every error the package raises on purpose derives from `AnalyticsError`; anything else is a bug and keeps
its traceback. They are all about inputs the user can change (a price file, a window, a model name), so
the CLI answers them with exit code 2. Each keeps `ValueError` as a second base because callers catch
bad input as `ValueError`::

    AnalyticsError                   root; the message names the file or option and what is expected
     ├─ PriceDataError               analytics/loaders.py: a price or oracle file that cannot be read as bars
     ├─ BacktestError                analytics/backtest.py: a backtest that cannot run as asked
     ├─ InsufficientHistoryError     analytics/baselines.py: too little history to fit or tune a model
     └─ OnchainError                 analytics/onchain.py: the database cannot give on-chain features
"""

from __future__ import annotations


class AnalyticsError(Exception):
    """Root of every error the analytics package raises on purpose."""

    exit_code = 2
