"""Exporters: the local JSONL file exporter and the durable run outcome exporter (+ spool)."""

from otel_runctx.exporters.outcome import OutcomeExporter
from otel_runctx.exporters.spool import OutcomeSpool

__all__ = ["OutcomeExporter", "OutcomeSpool"]
