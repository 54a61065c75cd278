"""RunContextSpanProcessor: every span started inside a run carries the run's attributes."""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_runctx.context import get_run_context
from otel_runctx.stats import report_error

__all__ = ["RunContextSpanProcessor"]


class RunContextSpanProcessor(SpanProcessor):
    """Stamps ``runctx.*`` attributes onto each span in ``on_start``.

    The run is read from the ``parent_context`` the SDK hands over (the context the span is
    started in), so spans started in another thread or task with an explicit context are stamped
    with that context's run, not the caller's. The attribute dict is built once per run and
    reused for every span. Errors are counted and logged, never raised: an exception escaping
    ``on_start`` would surface in the user's ``start_as_current_span``.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            run = get_run_context(parent_context)
            if run is not None:
                span.set_attributes(run.to_span_attributes())
        except Exception as error:
            report_error("span_processor.on_start", error)

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do: stamping happens at start, while attributes are still writable."""

    def shutdown(self) -> None:
        """Nothing to release: the processor keeps no per-run state."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True
