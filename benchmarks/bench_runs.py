"""What one run costs: ``run()`` enter + exit with its automatic outcome, against the bare SDK.

The baseline is what the same work costs without otel-runctx: one SDK span started and ended plus
one SDK LogRecord emitted, through the same global providers (batch processors with exporters
that acknowledge at once). Ours opens a run (its RunContext, root span, the active context),
leaves it, and records its automatic outcome on the root span, as an event and as metrics, with
the outcome spool on (the durable journal write happens before ``run()`` returns) and off.
Timed in interleaved rounds in this one process; the median round counts.
"""

from __future__ import annotations

import gc
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry._logs import LogRecord, get_logger, get_logger_provider, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from benchmarks._harness import Row
from otel_runctx import run
from otel_runctx.distro.attach import build_log_processors, build_span_processors
from otel_runctx.exporters import OutcomeSpool
from otel_runctx.exporters.outcome import SkipDeliveredOutcomes
from otel_runctx.outcomes import delivery, record_json
from otel_runctx.outcomes.active import activate_spool
from otel_runctx.outcomes.events import flush_outcome_events
from otel_runctx.outcomes.run_counter import SummedCounter

TITLE = "Per run: run() enter + exit with its automatic outcome, ns per run"


class _AckLogs(LogRecordExporter):
    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class _AckSpans(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


#: Batch queues that hold a whole round: a dropped span or record would make a variant cheaper.
_QUEUE = 20_000


def ensure_providers() -> None:
    """Global SDK providers as ``opentelemetry-instrument`` builds them (kept if already set).

    The log exporter is wrapped in ``SkipDeliveredOutcomes``, as the default wiring wraps the
    pipeline's OTLP exporter (distro/outcome_wiring.py): outcomes go out through the spool, the
    pipeline carries the app's other log records."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(shutdown_on_exit=False)
        for processor in build_span_processors():
            provider.add_span_processor(processor)
        provider.add_span_processor(BatchSpanProcessor(_AckSpans(), max_queue_size=_QUEUE))
        trace.set_tracer_provider(provider)
    if not isinstance(get_logger_provider(), LoggerProvider):
        logs = LoggerProvider(shutdown_on_exit=False)
        for log_processor in build_log_processors():
            logs.add_log_record_processor(log_processor)
        logs.add_log_record_processor(
            BatchLogRecordProcessor(SkipDeliveredOutcomes(_AckLogs()), max_queue_size=_QUEUE)
        )
        set_logger_provider(logs)


def interleaved_medians(
    variants: dict[str, Callable[[], object]], ops: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median over ``rounds`` interleaved rounds of each variant's mean wall-clock ns per call,
    and of its process CPU ns per call (every thread, with the SDK's batch queues and the
    outcome hand-off flushed inside the round, so their work is counted where it was caused)."""
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, operation in variants.items():
            gc.collect()
            gc.disable()
            try:
                start, start_cpu = time.perf_counter_ns(), time.process_time_ns()
                for _ in range(ops):
                    operation()
                wall[name].append((time.perf_counter_ns() - start) / ops)
                flush_outcome_events(30)
                _flush_providers()
                cpu[name].append((time.process_time_ns() - start_cpu) / ops)
            finally:
                gc.enable()
    return (
        {name: statistics.median(values) for name, values in wall.items()},
        {name: statistics.median(values) for name, values in cpu.items()},
    )


def _flush_providers() -> None:
    for provider in (trace.get_tracer_provider(), get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


def _bare_pair() -> Callable[[], None]:
    tracer, logger = trace.get_tracer("bench.bare"), get_logger("bench.bare")

    def bare() -> None:
        tracer.start_span("run checkout").end()
        logger.emit(LogRecord(body="run checkout ended: success"))

    return bare


def _one_run() -> None:
    with run("checkout", event_id="order-18231", customer_id="cust-0042"):
        pass


def measure(quick: bool) -> list[Row]:
    ensure_providers()
    ops, rounds = (300, 3) if quick else (2_000, 7)
    directory = Path(tempfile.mkdtemp(prefix="runctx-bench-runs-"))
    spool = OutcomeSpool(directory / "spool.sqlite3", max_bytes=1 << 30, exporter_factory=_AckLogs)
    previous = activate_spool(None)

    def spool_off() -> None:
        activate_spool(None)
        _one_run()

    def spool_on() -> None:
        activate_spool(spool)
        _one_run()

    fast_encoder = record_json._fast
    # opentelemetry-instrument also sets an SDK MeterProvider: the outcome's two instruments
    # then record for real. A private provider, as the global one can be set only once.
    meter = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("otel_runctx")
    metered_instruments = (
        SummedCounter(meter, "runctx.runs", unit="{run}"),
        meter.create_histogram("runctx.run.duration", unit="s"),
    )

    def spool_on_metered() -> None:
        activate_spool(spool)
        previous = delivery._instruments
        delivery._instruments = metered_instruments
        try:
            _one_run()
        finally:
            delivery._instruments = previous

    def spool_on_stdlib_json() -> None:
        activate_spool(spool)
        record_json._fast = None  # as installed without the fast extra
        try:
            _one_run()
        finally:
            record_json._fast = fast_encoder

    bare = "bare SDK: one span + one LogRecord emit"
    on = "run(), spool on" + ("" if fast_encoder is None else " (orjson: the fast extra)")
    on_stdlib = "run(), spool on, stdlib JSON (no fast extra)"
    metered = "run(), spool on, with an SDK MeterProvider"
    variants = {
        bare: _bare_pair(),
        "run(), spool off": spool_off,
        on: spool_on,
        metered: spool_on_metered,
    }
    if fast_encoder is not None:
        variants[on_stdlib] = spool_on_stdlib_json
    try:
        cost, cpu = interleaved_medians(variants, ops, rounds)
    finally:
        activate_spool(previous)
        spool.flush(30)
        spool.shutdown()
        shutil.rmtree(directory, ignore_errors=True)

    def cpu_note(name: str) -> str:
        return f"CPU {cpu[name] / 1000:.1f} us = {cpu[name] / cpu[bare]:.2f}x bare"

    rows = [
        Row(bare, cost[bare], note=f"CPU {cpu[bare] / 1000:.1f} us"),
        Row("run(), spool off", cost["run(), spool off"], bare, cpu_note("run(), spool off")),
        Row(on, cost[on], bare, cpu_note(on) + "; target <= 2.5x"),
    ]
    if fast_encoder is not None:
        rows.append(Row(on_stdlib, cost[on_stdlib], bare, cpu_note(on_stdlib)))
    rows.append(Row(metered, cost[metered], bare, cpu_note(metered) + "; outcome metrics real"))
    return rows
