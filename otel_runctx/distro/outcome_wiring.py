"""Durable outcome delivery by default: start it and keep the SDK pipeline from a second copy.

Called by the runctx configurator (after the SDK built its providers from ``OTEL_*``) and by
``configure()``. When the global LoggerProvider sends log records to a collector over OTLP, and
``OTEL_RUNCTX_OUTCOME_SPOOL`` is not ``off``, this:

1. starts the outcome delivery (the spool; direct sending if the spool cannot start), sending
   with that same OTLP exporter object, so an endpoint, headers or TLS set in code apply too;
2. wraps each OTLP log exporter of the pipeline in ``SkipDeliveredOutcomes``, so outcomes the
   delivery sends are not sent again by the pipeline (other exporters, e.g. console, still see
   them);
3. adds, first in the pipeline, a processor whose ``force_flush`` / ``shutdown`` reach the
   delivery, so the provider's flush and its shutdown at exit flush and stop the spool
   (bounded, never raising) while the OTLP exporter still works.

The exporters sit inside the SDK's processors (``_batch_processor._exporter`` on the batch
processor, ``_exporter`` on the simple one): private attributes, read only here. When they are
not there (another SDK version), nothing is wrapped and the fallback is said on stderr: with an
``otlp`` exporter in ``OTEL_LOGS_EXPORTER`` each outcome may then arrive twice (same
``runctx.outcome.id``).
"""

from __future__ import annotations

from typing import Any, Literal

from opentelemetry._logs import get_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor, ReadWriteLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter

from otel_runctx.distro.attach import _prepend, log_processors_of
from otel_runctx.exporters.outcome import (
    OutcomeExporter,
    SkipDeliveredOutcomes,
    start_default_delivery,
)
from otel_runctx.outcomes.active import OutcomeDelivery, get_active_delivery
from otel_runctx.settings import get_settings, otel_logs_exporters
from otel_runctx.stats import report_error, say

__all__ = ["OutcomeDeliveryProcessor", "wire_outcome_delivery"]

Wiring = Literal["off", "no-otlp", "durable", "degraded", "foreign"]


class OutcomeDeliveryProcessor(LogRecordProcessor):
    """Connects the provider's ``force_flush`` and ``shutdown`` to the outcome delivery."""

    #: It does nothing with any record (see outcomes/pipeline.py).
    ignores_delivered_outcomes = True

    def __init__(self, delivery: OutcomeDelivery) -> None:
        self.delivery = delivery

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        pass

    def emit(self, log_record: ReadWriteLogRecord) -> None:  # older SDK name
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return self.delivery.flush(max(0.0, timeout_millis / 1000))
        except Exception as error:
            report_error("outcome_delivery.force_flush", error)
            return False

    def shutdown(self) -> None:
        try:
            from otel_runctx.outcomes.active import stop_delivery

            stop_delivery(self.delivery)
        except Exception as error:
            report_error("outcome_delivery.shutdown", error)


def _exporter_slots(processor: object) -> list[tuple[object, str]]:
    """(holder, attribute) pairs under which ``processor`` keeps its exporter."""
    slots: list[tuple[object, str]] = []
    batch = getattr(processor, "_batch_processor", None)
    if batch is not None and isinstance(getattr(batch, "_exporter", None), LogRecordExporter):
        slots.append((batch, "_exporter"))
    if isinstance(getattr(processor, "_exporter", None), LogRecordExporter):
        slots.append((processor, "_exporter"))
    return slots


def _is_otlp(exporter: object) -> bool:
    return type(exporter).__module__.startswith("opentelemetry.exporter.otlp")


def wire_outcome_delivery(provider: Any = None) -> Wiring:
    """Make outcome delivery durable and sent-once on ``provider`` (default: the global one).

    Idempotent; never raises. Returns what it did (``otel-runctx doctor`` shows the delivery).
    """
    try:
        return _wire(provider if provider is not None else get_logger_provider())
    except Exception as error:
        report_error("outcome_delivery.wire", error)
        return "foreign"


def _wire(provider: Any) -> Wiring:
    if get_settings().outcome_spool is None:
        return "off"
    if not isinstance(provider, LoggerProvider):
        return "foreign"
    processors = log_processors_of(provider)
    slots: list[tuple[object, str]] = []
    outcome_exporter = False
    for processor in processors or ():
        for holder, attribute in _exporter_slots(processor):
            exporter = getattr(holder, attribute)
            if isinstance(exporter, SkipDeliveredOutcomes):
                exporter = exporter.inner
            if _is_otlp(exporter):
                slots.append((holder, attribute))
            outcome_exporter = outcome_exporter or isinstance(exporter, OutcomeExporter)
    names = otel_logs_exporters()
    blind = processors is None and "otlp" in names
    if not slots and not blind and not outcome_exporter:
        return "no-otlp"  # outcomes go to no collector (e.g. runctx_jsonl only): nothing to do
    factory = None
    if slots:
        first = getattr(*slots[0])
        shared = first.inner if isinstance(first, SkipDeliveredOutcomes) else first
        factory = lambda: shared  # noqa: E731 - the pipeline's own exporter, as configured
    delivery = get_active_delivery() or start_default_delivery(exporter_factory=factory)
    if delivery is None:
        return "off"
    for holder, attribute in slots:
        exporter = getattr(holder, attribute)
        if not isinstance(exporter, SkipDeliveredOutcomes):
            setattr(holder, attribute, SkipDeliveredOutcomes(exporter))
    if blind:
        say(
            "outcome_delivery.blind",
            "cannot see the log pipeline's exporters (another SDK version?): outcome events may "
            "arrive twice, once from the spool and once from otlp; dedupe on runctx.outcome.id",
        )
    if processors is not None and not any(
        isinstance(p, OutcomeDeliveryProcessor) for p in processors
    ):
        # First in line: at exit the provider shuts processors down in order, and the spool's
        # last sends use the pipeline's OTLP exporter, which must not be shut down yet.
        ours = OutcomeDeliveryProcessor(delivery)
        multi = getattr(provider, "_multi_log_record_processor", None)
        if not _prepend(multi, "_log_record_processors", [ours]):
            provider.add_log_record_processor(ours)
    return "degraded" if delivery.spool is None else "durable"
