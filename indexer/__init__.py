"""Copies Ethereum event logs into PostgreSQL: exact, resumable and reorg-safe."""
