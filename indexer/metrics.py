"""Prometheus metrics of the indexer, on their own registry so several indexers can live in one process."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class IndexerMetrics:
    """Local and remote head, lag, log throughput, RPC errors by kind, reorgs, their depth, lagging nodes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.local_head = Gauge("chainrisk_local_head", "Last indexed block", ["chain"], registry=r)
        self.remote_head = Gauge("chainrisk_remote_head", "Node's latest block", ["chain"], registry=r)
        self.lag = Gauge("chainrisk_lag_blocks", "Remote head minus local head", ["chain"], registry=r)
        self.logs = Counter("chainrisk_logs", "Logs indexed", ["chain"], registry=r)
        self.logs_per_s = Gauge(
            "chainrisk_logs_per_second", "Logs/s over the last batch", ["chain"], registry=r
        )
        self.rpc_errors = Counter("chainrisk_rpc_errors", "RPC errors by kind", ["kind"], registry=r)
        self.reorgs = Counter("chainrisk_reorgs", "Reorgs rolled back", ["chain"], registry=r)
        self.reorg_depth = Histogram(
            "chainrisk_reorg_depth_blocks",
            "Depth of rolled back reorgs",
            ["chain"],
            buckets=(1, 2, 3, 5, 8, 13, 21, 34, 64, 128),
            registry=r,
        )
        self.lagging = Counter(
            "chainrisk_lagging_node",
            "Answers from a node behind the indexed block (waited for, never rolled back)",
            ["chain"],
            registry=r,
        )
        self.quarantined = Counter(
            "chainrisk_quarantined_logs", "Logs that did not decode", ["chain"], registry=r
        )
        self._last = time.monotonic()

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def rpc_error(self, kind: str) -> None:
        self.rpc_errors.labels(kind=kind).inc()

    def batch_done(self, chain: str, local: int, remote: int, n_logs: int, n_quarantined: int) -> None:
        now = time.monotonic()
        elapsed, self._last = now - self._last, now
        self.local_head.labels(chain).set(local)
        self.remote_head.labels(chain).set(remote)
        self.lag.labels(chain).set(max(remote - local, 0))
        self.logs.labels(chain).inc(n_logs)
        self.quarantined.labels(chain).inc(n_quarantined)
        if elapsed > 0:
            self.logs_per_s.labels(chain).set(n_logs / elapsed)

    def lagging_node(self, chain: str) -> None:
        self.lagging.labels(chain).inc()

    def reorg(self, chain: str, depth: int) -> None:
        self.reorgs.labels(chain).inc()
        self.reorg_depth.labels(chain).observe(depth)
