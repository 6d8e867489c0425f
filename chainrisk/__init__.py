"""chainrisk: on-chain data indexer with risk analytics for DeFi protocol risk teams."""

__version__ = "0.1.0"
