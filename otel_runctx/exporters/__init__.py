"""Exporters: durable delivery of outcome events (the outcome exporter and its spool)."""

from otel_runctx.exporters.outcome import OutcomeExporter
from otel_runctx.exporters.spool import OutcomeSpool

__all__ = ["OutcomeExporter", "OutcomeSpool"]
