"""RunContextLogProcessor: every OTel log record emitted inside a run carries the run."""

from __future__ import annotations

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from otel_runctx.processors import _fast_stamp
from otel_runctx.processors._lookup import run_for
from otel_runctx.stats import report_error

__all__ = ["RunContextLogProcessor"]


class RunContextLogProcessor(LogRecordProcessor):
    """Adds ``runctx.*`` attributes to each log record, from the record's context or the current.

    Like the span processor, it falls back to validated ``runctx.*`` baggage when the context has
    no RunContext. Register it before the exporting processor (processors run in registration
    order), so the exporter sees the stamped record. Attributes the record already has are left
    as they are. Never raises into the logging call.
    """

    #: Stamping an outcome that no exporter will send changes nothing (see outcomes/pipeline.py).
    ignores_delivered_outcomes = True

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        try:
            record = log_record.log_record
            run = run_for(record.context)
            if run is None:
                return
            attributes = record.attributes
            if attributes is None:
                record.attributes = dict(run.to_stamp_attributes())
            else:
                _fast_stamp.add_missing(attributes, run.to_stamp_attributes())  # type: ignore[arg-type]
        except Exception as error:
            report_error("log_processor.on_emit", error)

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True
