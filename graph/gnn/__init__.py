"""A learned surrogate of the liquidation cascade: simulator labels, graph features, models, metrics."""
