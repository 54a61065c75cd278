"""OutcomeExporter: durable delivery of ``runctx.outcome`` events.

Enable it with ``OTEL_LOGS_EXPORTER=otlp,runctx_outcome``.

Constructing the exporter switches the process's outcome spool on (``OTEL_RUNCTX_OUTCOME_SPOOL``;
``off`` disables it). From then on ``emit_outcome`` writes each outcome to the spool on the
caller's thread, before it returns: an exporter behind the SDK's batch processor sees records only
later, on another thread, too late to promise that an outcome survives a crash right after the
call. So with the spool on, ``export`` has nothing left to do for outcome records, and the spool's
worker sends them with the stock OTLP log exporter. With the spool off, ``export`` sends outcome
records directly (best effort, like any log exporter). Other log records are never sent by this
exporter: keep ``otlp`` in ``OTEL_LOGS_EXPORTER`` for them.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult

from otel_runctx.outcomes.active import activate_spool, get_active_spool, spool_for_path
from otel_runctx.outcomes.model import OUTCOME_EVENT_NAME
from otel_runctx.outcomes.spool import OutcomeSpool
from otel_runctx.settings import Settings, get_settings
from otel_runctx.stats import report_error

__all__ = ["OutcomeExporter", "build_otlp_log_exporter"]


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


def _spool_from_settings(settings: Settings) -> OutcomeSpool | None:
    path = settings.outcome_spool
    if path is None:
        return None
    return spool_for_path(
        path,
        lambda: OutcomeSpool(
            path,
            max_bytes=settings.outcome_spool_max_bytes,
            exporter_factory=lambda: build_otlp_log_exporter(settings),
        ),
    )


class OutcomeExporter(LogRecordExporter):
    """Delivers outcome events durably through the spool. Built with no arguments (entry point)."""

    def __init__(self) -> None:
        self._spool: OutcomeSpool | None = None
        self._direct: LogRecordExporter | None = None
        try:
            settings = get_settings()
            self._spool = _spool_from_settings(settings)
            if self._spool is None:
                self._direct = build_otlp_log_exporter(settings)
        except Exception as error:
            report_error("outcome_exporter.init", error, "outcomes will not be spooled")

    @property
    def spool(self) -> OutcomeSpool | None:
        return self._spool

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        if self._direct is None:
            return LogRecordExportResult.SUCCESS  # spooled by emit_outcome already
        outcomes = [r for r in batch if r.log_record.event_name == OUTCOME_EVENT_NAME]
        if not outcomes:
            return LogRecordExportResult.SUCCESS
        try:
            return self._direct.export(outcomes)
        except Exception as error:
            report_error("outcome_exporter.export", error)
            return LogRecordExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait until every outcome spooled so far was acknowledged by the collector."""
        try:
            if self._spool is not None:
                return self._spool.flush(timeout_millis / 1000)
            return True
        except Exception as error:
            report_error("outcome_exporter.force_flush", error)
            return False

    def shutdown(self) -> None:
        try:
            if self._spool is not None:
                self._spool.shutdown()
                if get_active_spool() is self._spool:
                    activate_spool(None)
            if self._direct is not None:
                self._direct.shutdown()  # type: ignore[no-untyped-call]
        except Exception as error:
            report_error("outcome_exporter.shutdown", error)
