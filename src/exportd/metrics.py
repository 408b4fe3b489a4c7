"""Prometheus metrics, counted from the committed events (one registry per app)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge

from exportd.domain.events import EventRecord
from exportd.domain.jobs import EventType


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter("exportd_events", "Committed export events", ["type"], registry=self.registry)
        self.cancels = Counter("exportd_cancellations", "Cancelled exports", ["reason"], registry=self.registry)
        self.processing_seconds = Counter("exportd_processing_seconds", "Seconds spent on completed exports",
                                          registry=self.registry)
        self.running = Gauge("exportd_running_jobs", "Exports running in this process", registry=self.registry)
        #: scaled out only
        self.broker_sent = Gauge("exportd_broker_sent", "Export tasks handed to the broker by this node",
                                 registry=self.registry)
        self.broker_failed = Gauge("exportd_broker_send_failures", "Export tasks the broker did not take "
                                   "(the pending sweep sends them again)", registry=self.registry)
        self.listener_reconnects = Gauge("exportd_listener_reconnects", "Times this node's LISTEN connection "
                                         "was replaced (then it caught up from the store)", registry=self.registry)
        self.leader = Gauge("exportd_cluster_leader", "1 while this node runs the cluster's reaper and sweep",
                            registry=self.registry)

    def on_events(self, records: Sequence[EventRecord]) -> None:
        for record in records:
            self.events.labels(record.type.value).inc()
            if record.type == EventType.CANCELLED:
                self.cancels.labels(record.payload["reason"]).inc()
            elif record.type == EventType.COMPLETED:
                self.processing_seconds.inc(record.payload["processingTime"])
