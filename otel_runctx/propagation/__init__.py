"""Carrying the run across services in the W3C ``baggage`` header.

:class:`RunContextPropagator` is registered as the ``runctx`` OpenTelemetry propagator
(``OTEL_PROPAGATORS=tracecontext,runctx``). The pieces: :mod:`.codec` (header encoding and a
bounded parser), :mod:`.budget` (what fits), :mod:`.signing` (HMAC over the run's fields) and
:mod:`.policy` (validation and the ``OTEL_RUNCTX_INBOUND`` trust policy). Imports only the run
model, settings and stats.
"""

from __future__ import annotations

from otel_runctx import stats
from otel_runctx.propagation.propagator import BAGGAGE_HEADER, RunContextPropagator

__all__ = ["BAGGAGE_HEADER", "RunContextPropagator", "propagation_stats"]


def propagation_stats() -> dict[str, int]:
    """The ``propagation.*`` counters (accepted, rejected_invalid, rejected_signature, ...)."""
    return {
        name: value for name, value in stats.snapshot().items() if name.startswith("propagation.")
    }
