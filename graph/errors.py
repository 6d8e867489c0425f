"""The one exception root of the graph package.

Every error the package raises on purpose derives from `GraphError`; anything else is a bug and keeps its
traceback. The CLI answers a `GraphError` with its `exit_code`: 2 for input the user can fix::

    GraphError                       root
     ├─ GraphInputError              graph/validation.py, graph/debtrank.py, graph/clearing.py: a matrix or
     │                               vector that the models cannot take (also a ValueError)
     ├─ ShockError                   a `--shock MARKET=FRACTION` that names no market or no fraction in [0, 1]
     ├─ LiquidationInputError        graph/liquidation.py: positions or amounts the rules cannot take
     ├─ LiquidationReverted          graph/liquidation.py: the pool would revert (Aave's error code)
     └─ CascadeInputError            graph/cascade.py: markets, pools, oracles or a shock it cannot take
"""

from __future__ import annotations


class GraphError(Exception):
    """Root of every error the graph package raises on purpose."""

    exit_code = 2


class GraphInputError(GraphError, ValueError):
    """An input array the network models cannot take; the message names the argument and the problem."""


class ShockError(GraphError, ValueError):
    """A --shock that does not name a market or a fraction in [0, 1], or names a market twice."""
