"""A local chain (anvil) with published contracts and a market scenario."""
