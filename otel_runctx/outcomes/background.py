"""Our own background work runs outside any run, with instrumentation suppressed.

The spool's OTLP sends and the helper threads are otel-runctx's traffic, not the user's: a
``requests``/``urllib3`` span for ``POST /v1/logs`` stamped with whatever run happened to be
active when the helper thread started (the threading instrumentation copies the starter's
context into a new thread) bills one customer for another's outcome delivery. So each helper
body starts from an empty OTel Context (no run, no span, no baggage) with both of OpenTelemetry's
suppression flags set, which every contrib instrumentation and the SDK honour.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context

__all__ = ["background"]


@contextlib.contextmanager
def background() -> Iterator[None]:
    """Run the block outside any run and span, with instrumentation suppressed."""
    # Imported here: opentelemetry.instrumentation.utils imports opentelemetry.propagate,
    # which loads propagator entry points (ours among them) while this package is importing.
    from opentelemetry.instrumentation.utils import (
        suppress_http_instrumentation,
        suppress_instrumentation,
    )

    token = otel_context.attach(otel_context.Context())
    try:
        with suppress_instrumentation(), suppress_http_instrumentation():
            yield
    finally:
        otel_context.detach(token)
