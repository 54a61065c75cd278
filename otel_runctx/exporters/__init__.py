"""Exporters named in ``OTEL_*_EXPORTER``: ``runctx_jsonl`` (traces and logs to a local file) and
``runctx_outcome`` (hands outcome records to the durable spool in ``outcomes/``). Built with no
arguments, so they read settings; they may import outcomes and everything below it."""

from otel_runctx.exporters.outcome import OutcomeExporter
from otel_runctx.outcomes.spool import OutcomeSpool

__all__ = ["OutcomeExporter", "OutcomeSpool"]
