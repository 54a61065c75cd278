"""``runctx_outcome`` and the pieces that make durable outcome delivery the default.

Durable delivery is on by default under the runctx configurator and ``configure()`` (see
``otel_runctx.distro.outcome_wiring``); naming ``runctx_outcome`` in ``OTEL_LOGS_EXPORTER``
switches it on in any other setup too. Either way :func:`start_default_delivery` starts the
process's one delivery: ``emit_outcome`` then writes each outcome to the spool on the caller's
thread, before it returns (an exporter behind the SDK's batch processor sees records only later,
on another thread, too late to promise that an outcome survives a crash right after the call),
and the spool's worker sends it with the stock OTLP log exporter. So ``OutcomeExporter.export``
has nothing left to send for delivered outcomes, and :class:`SkipDeliveredOutcomes` wrapped
around the SDK pipeline's OTLP exporters keeps them from sending a second copy.

With ``OTEL_RUNCTX_OUTCOME_SPOOL=off`` nothing is started: ``OutcomeExporter`` sends outcome
records directly (best effort, like any log exporter). It never sends other log records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_runctx.outcomes.active import (
    OutcomeDelivery,
    is_delivered,
    start_delivery,
    stop_delivery,
)
from otel_runctx.outcomes.model import OUTCOME_EVENT_NAME
from otel_runctx.outcomes.spool import OutcomeSpool
from otel_runctx.settings import Settings, get_settings
from otel_runctx.stats import report_error

__all__ = [
    "OutcomeExporter",
    "SkipDeliveredOutcomes",
    "build_otlp_log_exporter",
    "start_default_delivery",
]


def build_otlp_log_exporter(settings: Settings | None = None) -> LogRecordExporter:
    """The stock OTLP log exporter for the configured protocol (it reads OTEL_EXPORTER_OTLP_*)."""
    protocol = (settings or get_settings()).otlp_logs_protocol
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (
            OTLPLogExporter as HttpLogExporter,
        )

        return HttpLogExporter()
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter as GrpcLogExporter,
    )

    return GrpcLogExporter()


def start_default_delivery(
    settings: Settings | None = None,
    exporter_factory: Callable[[], LogRecordExporter] | None = None,
) -> OutcomeDelivery | None:
    """Start (or reuse) the process's outcome delivery; None when the spool is switched off.

    ``exporter_factory`` builds what the spool and the direct path send with (default: the
    stock OTLP log exporter from ``OTEL_EXPORTER_OTLP_*``). Never raises.
    """
    try:
        settings = settings or get_settings()
        path = settings.outcome_spool
        if path is None:
            return None
        factory = exporter_factory or (lambda: build_otlp_log_exporter(settings))
        max_bytes = settings.outcome_spool_max_bytes
        return start_delivery(
            path,
            lambda: OutcomeSpool(path, max_bytes=max_bytes, exporter_factory=factory),
            factory,
        )
    except Exception as error:
        report_error("outcome_delivery.start", error, "outcomes go through the log pipeline")
        return None


class SkipDeliveredOutcomes(LogRecordExporter):
    """Wraps an SDK pipeline's exporter so it skips outcomes otel-runctx delivers itself."""

    #: Delivered outcomes are all this drops; see outcomes/pipeline.py.
    ignores_delivered_outcomes = True

    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        rest = [r for r in batch if not is_delivered(r.log_record)]
        if not rest:
            return LogRecordExportResult.SUCCESS
        return self.inner.export(rest)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.inner.shutdown()  # type: ignore[no-untyped-call]


class OutcomeExporter(LogRecordExporter):
    """Durable outcome delivery in any setup. Built with no arguments (entry point)."""

    #: It sends only outcomes nobody delivered (see outcomes/pipeline.py).
    ignores_delivered_outcomes = True

    def __init__(self) -> None:
        self._delivery: OutcomeDelivery | None = None
        self._direct: LogRecordExporter | None = None
        try:
            settings = get_settings()
            self._delivery = start_default_delivery(settings)
            if self._delivery is None:
                self._direct = build_otlp_log_exporter(settings)
        except Exception as error:
            report_error("outcome_exporter.init", error, "outcome events are not delivered")

    @property
    def spool(self) -> OutcomeSpool | None:
        return self._delivery.spool if self._delivery is not None else None

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._direct is None:
            return LogRecordExportResult.SUCCESS  # delivered by emit_outcome already
        outcomes = [
            r
            for r in batch
            if r.log_record.event_name == OUTCOME_EVENT_NAME and not is_delivered(r.log_record)
        ]
        if not outcomes:
            return LogRecordExportResult.SUCCESS
        try:
            return self._direct.export(outcomes)
        except Exception as error:
            report_error("outcome_exporter.export", error)
            return LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait (bounded) until every outcome so far was acknowledged. Never raises."""
        try:
            if self._delivery is not None:
                return self._delivery.flush(max(0.0, timeout_millis / 1000))
            return True
        except Exception as error:
            report_error("outcome_exporter.force_flush", error)
            return False

    def shutdown(self) -> None:
        try:
            if self._delivery is not None:
                stop_delivery(self._delivery)
            if self._direct is not None:
                self._direct.shutdown()  # type: ignore[no-untyped-call]
        except Exception as error:
            report_error("outcome_exporter.shutdown", error)
