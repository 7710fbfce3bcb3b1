"""Prometheus metrics of the endpoint: requests by route and status, latency, batch sizes, queue depth.

With ``--workers N`` each worker process writes its samples to ``PROMETHEUS_MULTIPROC_DIR``
(set by :func:`textclf.serving.server.serve`) and ``GET /metrics`` sums them over workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
disable_created_metrics()  # no *_created series: they double the output and no dashboard reads them


class Metrics:
    """The endpoint's metrics, in a registry of their own (so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "textclf_requests", "HTTP requests by route and status code.", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "textclf_request_latency_seconds",
            "Time from request to response, by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "textclf_batch_size", "Texts per forward pass of the model.", buckets=_BATCH_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge(
            "textclf_queue_depth", "Texts waiting for a batch.", registry=self.registry, multiprocess_mode="livesum"
        )

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, size: int, queue_depth: int) -> None:
        self.batch_size.observe(size)
        self.queue_depth.set(queue_depth)

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
