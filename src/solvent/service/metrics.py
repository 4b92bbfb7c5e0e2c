"""Prometheus metrics of the service (``GET /metrics``, text format 0.0.4).

Counted by the committer thread once a batch is committed (:meth:`ServiceMetrics.observe`, the
service's ``observer``), so what is counted is what the log holds:

- ``solvent_commands_total{kind, outcome}``: commands by kind and outcome: ``applied`` and
  ``rejected`` (refused by the engine, recorded) are log entries; ``replayed`` (an idempotency key
  answered from the log) and ``refused`` (refused against the state before being written, 409,
  424, 503...) are not.
- ``solvent_commit_seconds``: histogram of the time to write one group commit (one transaction
  with its outcomes), the wait an acknowledged command paid for durability.
- ``solvent_liquidation_events_total{kind}``: liquidation events committed, by event kind
  (liquidation_started, position_liquidated, insurance_fund_drawn, position_auto_deleveraged, ...).

Read when scraped: ``solvent_queue_depth`` (commands waiting to be applied plus batches waiting to
be written), ``solvent_log_seq`` (the log's last seq: its length), ``solvent_stream_subscribers``
(open WebSocket streams and the bus publisher), ``solvent_insurance_fund_balance{venue, asset}`` and
``solvent_backstop_balance{venue, backstop, asset}`` (floats of the exact ledger amounts: a gauge
is a float), ``solvent_published_seq`` (the last seq on the bus, with ``--publish``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from ..store.audit import LIQUIDATION_KINDS
from .logging import COMMANDS, log_command

if TYPE_CHECKING:
    from .app import Service

EVENTS_PREFIX = '{"events":'
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_LIQUIDATION_NEEDLES = tuple(f'"kind":"{kind}"' for kind in LIQUIDATION_KINDS)
_LIQUIDATION_SET = frozenset(LIQUIDATION_KINDS)


class ServiceMetrics:
    """The service's registry (its own, not the process-global one: several apps in one process,
    as in the tests, do not share counters)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        self.commands = Counter("solvent_commands", "Commands by kind and outcome.", ("kind", "outcome"),
                                registry=self.registry)
        self.commit = Histogram("solvent_commit_seconds", "Time to write one group commit.",
                                buckets=COMMIT_BUCKETS, registry=self.registry)
        self.liquidations = Counter("solvent_liquidation_events", "Liquidation events committed, by kind.",
                                    ("kind",), registry=self.registry)
        self.published_seq: int | None = None  # set by the bus publisher
        self.registry.register(_Scraped(self))

    def observe(self, answers: list[tuple[list[Any], list[Any]]], seconds: float) -> None:
        """After a group commit (committer thread): count each command's outcome, log it, count
        the liquidation events of the entries just written."""
        if any(result.entry is not None and not result.replayed for _, results in answers for result in results):
            self.commit.observe(seconds)
        logging_on = COMMANDS.isEnabledFor(logging.INFO)
        for batch, results in answers:
            offset = 0
            for waiter in batch:
                mine = results[offset:offset + len(waiter.items)]
                for (command, _key), result in zip(waiter.items, mine, strict=True):
                    entry, error = result.entry, None
                    if entry is None or entry.outcome is None:
                        outcome, error = "refused", str(result.error)
                    elif result.replayed:
                        outcome = "replayed"
                    elif entry.outcome.startswith(EVENTS_PREFIX):
                        outcome = "applied"
                        if any(needle in entry.outcome for needle in _LIQUIDATION_NEEDLES):
                            for event in entry.events:
                                if event.get("kind") in _LIQUIDATION_SET:
                                    self.liquidations.labels(event["kind"]).inc()
                    else:
                        outcome = "rejected"
                        error = (entry.rejection or {}).get("reason")
                    self.commands.labels(command.kind, outcome).inc()
                    if logging_on:
                        log_command(entry.seq if entry is not None else None, command.kind, outcome,
                                    getattr(waiter, "key_id", None), seconds, error)
                offset += len(waiter.items)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Scraped:
    """Gauges read from the service when scraped."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> Iterable[Any]:
        return []  # read at collection; nothing to check at registration

    def collect(self) -> Iterable[GaugeMetricFamily]:
        service = self.metrics.service
        yield GaugeMetricFamily("solvent_queue_depth", "Commands waiting to be applied plus batches waiting to be "
                                "written.", value=len(service._queue) + service._staged.qsize())
        yield GaugeMetricFamily("solvent_log_seq", "The command log's last seq (its length).",
                                value=service.durable.seq)
        yield GaugeMetricFamily("solvent_stream_subscribers", "Open event streams (WebSocket and bus).",
                                value=len(service._listeners))
        if self.metrics.published_seq is not None:
            yield GaugeMetricFamily("solvent_published_seq", "The last log seq published to the bus.",
                                    value=self.metrics.published_seq)
        insurance = GaugeMetricFamily("solvent_insurance_fund_balance", "Insurance fund balance per venue and asset.",
                                      labels=("venue", "asset"))
        backstop = GaugeMetricFamily("solvent_backstop_balance", "Backstop (vault) balance per venue and asset.",
                                     labels=("venue", "backstop", "asset"))
        started = time.perf_counter()
        with service.lock:  # a consistent, committed state (like the reads)
            service.durable.settle()
            engine = service.durable.engine
            ledger = engine.ledger
            for name, venue in sorted(engine.venues.items()):
                for asset, units in sorted(ledger.account(venue.insurance).balances.items()):
                    insurance.add_metric((name, asset), float(ledger.amount(asset, units)))
                if venue.backstop is not None:
                    state = engine.backstops[venue.backstop]
                    for asset, units in sorted(ledger.account(state.account).balances.items()):
                        backstop.add_metric((name, state.name, asset), float(ledger.amount(asset, units)))
        yield insurance
        yield backstop
        yield GaugeMetricFamily("solvent_scrape_lock_seconds", "Time the last scrape held the engine lock.",
                                value=time.perf_counter() - started)
