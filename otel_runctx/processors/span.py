"""RunContextSpanProcessor: every span started inside a run carries the run's attributes."""

from __future__ import annotations

import threading

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_runctx.processors import _fast_stamp
from otel_runctx.processors._lookup import run_for
from otel_runctx.stats import report_error

__all__ = ["RootSpanStart", "RunContextSpanProcessor", "root_span_start"]


class RootSpanStart(threading.local):
    """The run whose root span this thread is starting, and that span's name
    (:func:`otel_runctx.runs.run` sets them around ``start_span``), so the processor stamps
    that span with the run's full set, once, instead of the lean set that ``run()`` would then
    overwrite with the full one. The processor clears it; still set after ``start_span``, no
    processor stamped the span. (The name keeps a span that a sampler or an earlier processor
    starts meanwhile, in the same run, from being taken for the root.)"""

    run: object = None
    name: str = ""


root_span_start = RootSpanStart()


class RunContextSpanProcessor(SpanProcessor):
    """Stamps ``runctx.*`` attributes onto each span in ``on_start``.

    The run is read from the ``parent_context`` the SDK hands over (the context the span is
    started in; the current context when the caller passed none), so a span started with an
    explicit context is stamped with that context's run. Without a RunContext, ``runctx.*``
    baggage from an upstream service (stock baggage propagator) is used, after validation.

    The attribute mapping is built once per run and written in one call per span. The processor
    keeps no per-run state. Errors are counted and logged, never raised: an exception escaping
    ``on_start`` would surface in the user's ``start_as_current_span``.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            run = run_for(parent_context)
            if run is None:
                return
            marker = root_span_start
            if run is marker.run and span.name == marker.name:  # the run's root span
                _fast_stamp.stamp(span, run.to_span_attributes())  # its full attribute set
                marker.run = None
            else:
                _fast_stamp.stamp(span, run.to_stamp_attributes())
        except Exception as error:
            report_error("span_processor.on_start", error)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do: stamping happens at start, while attributes are still writable."""

    def shutdown(self) -> None:
        """Nothing to release: the processor keeps no per-run state."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True
