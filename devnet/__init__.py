"""A local chain (anvil) with published contracts and a market scenario."""

# Block 0 of the devnet unless asked otherwise (2025-01-01T00:00:00Z): with blocks 12 s apart and a seed,
# the very same chain every run. Here, so the CLI can show it as a default without importing the package.
GENESIS_TIMESTAMP = 1_735_689_600
