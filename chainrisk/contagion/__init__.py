"""Contagion on an indexed chain: cascades (:mod:`.report`) on inputs loaded at a block (:mod:`.inputs`),
and the tail of bad debt over many scenarios (:mod:`.var`)."""
