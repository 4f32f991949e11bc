"""Prometheus metrics at ``/metrics``: what an operator graphs and alerts on.

Counted as they happen: requests and their latency by route (the route's template, so
ids do not multiply the series), chat decisions by kind and by path (``rasa``, or
``engine`` in degraded mode), and Rasa failures. Read at each scrape: handoffs waiting
and the oldest one's age, the index's size and knowledge revision, whether the engine
is ready and whether the chat is degraded; under ``madoguchi serve``, restarts by
component and whether each is up or given up (``assistant.operations.supervisor``).

Each app has a registry of its own, so tests can run several apps in one process.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from assistant.operations.config import Settings
from assistant.operations.supervisor import read_state
from knowledge.store import knowledge_revision, open_db
from knowledge.suggestions import suggestion_counts

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)


class StateCollector(Collector):
    """Gauges read from the database and the engine when Prometheus scrapes."""

    def __init__(self, settings: Settings, state: Callable[[], dict]):
        self.settings = settings
        self.state = state  # the app's current engine and chat state

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = self.state()
        yield from self.supervised()
        yield GaugeMetricFamily(
            "madoguchi_engine_ready", "1 when the engine is loaded and answering", state["ready"]
        )
        yield GaugeMetricFamily(
            "madoguchi_chat_degraded",
            "1 while the chat answers from the engine because Rasa is down or slow",
            state["degraded"],
        )
        engine = state.get("engine")
        if engine is not None:
            yield GaugeMetricFamily(
                "madoguchi_index_entries",
                "entry revisions in the index",
                engine.dense.entry_count(),
            )
            yield GaugeMetricFamily(
                "madoguchi_index_vectors", "vectors in the index", len(engine.dense.rows)
            )
            yield GaugeMetricFamily(
                "madoguchi_index_knowledge_revision",
                "knowledge revision the index was last synced to",
                engine.dense.knowledge_revision,
            )
        try:
            db = open_db(self.settings.database_path)
            try:
                revision = knowledge_revision(db)
                count, oldest = next(
                    db.query(
                        "SELECT count(*) AS n, min(created_at) AS oldest FROM tickets "
                        "WHERE status = 'open'"
                    )
                ).values()
                suggested = suggestion_counts(db)
            finally:
                db.close()
        except Exception as error:  # a scrape must not fail because the database did
            log.error("metrics: cannot read the database: %r", error)
            return
        yield GaugeMetricFamily(
            "madoguchi_knowledge_revision", "knowledge revision in the database", revision
        )
        yield GaugeMetricFamily("madoguchi_handoffs_open", "handoff tickets not resolved", count)
        suggestions = GaugeMetricFamily(
            "madoguchi_suggestions",
            "suggested phrasings (wordings) by status: open, accepted, rejected",
            labels=["status"],
        )
        for status, number in suggested.items():
            suggestions.add_metric([status], number)
        yield suggestions
        age = 0.0
        if oldest:
            age = (dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(oldest)).total_seconds()
        yield GaugeMetricFamily(
            "madoguchi_handoff_oldest_wait_seconds",
            "how long the longest-waiting open handoff has waited",
            max(0.0, age),
        )

    def supervised(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """Restarts by component, from the supervisor's state file: the API is one of
        the processes it restarts, so the counts cannot live in this process."""
        services = read_state(self.settings.home)
        if services is None:  # not under `madoguchi serve`
            return
        restarts = CounterMetricFamily(
            "madoguchi_restarts",
            "times the supervisor started a component again after it exited or hung",
            labels=["component"],
        )
        up = GaugeMetricFamily(
            "madoguchi_component_up",
            "1 while the component runs and answers its health check",
            labels=["component"],
        )
        given_up = GaugeMetricFamily(
            "madoguchi_component_given_up",
            "1 when the component failed too often and is no longer restarted",
            labels=["component"],
        )
        for name, service in sorted(services.items()):
            restarts.add_metric([name], service["restarts"])
            up.add_metric([name], int(service["state"] == "running"))
            given_up.add_metric([name], int(service["state"] == "given_up"))
        yield from (restarts, up, given_up)


class Metrics:
    def __init__(self, settings: Settings, state: Callable[[], dict]):
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "madoguchi_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "madoguchi_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.decisions = Counter(
            "madoguchi_chat_decisions",
            "chat turns by decision and by the path that answered (rasa, engine)",
            ["decision", "path"],
            registry=self.registry,
        )
        self.rasa_failures = Counter(
            "madoguchi_rasa_failures",
            "calls to Rasa that failed (unreachable, timeout, error, empty)",
            ["kind"],
            registry=self.registry,
        )
        self.registry.register(StateCollector(settings, state))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
