"""Outcomes: ``emit_outcome`` and automatic outcomes (``emit``), the Outcome model (``model``), the
hand-off to the OTel log pipeline (``events``), delivery (``delivery``), and the durable spool
(``journal`` → ``store`` → ``spool``, switched on through ``active``). Imports the run model, usage
and stats; never exporters, distro or cli (the exporter registers its spool in ``active``)."""

from otel_runctx.outcomes.emit import emit_outcome

__all__ = ["emit_outcome"]
