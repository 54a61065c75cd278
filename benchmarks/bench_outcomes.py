"""emit_outcome on the caller's thread (spool on and off) and sustained outcomes/s into the spool.

The spool's exporter here is a null exporter that acknowledges at once, so the end-to-end row
measures our own path (journal append, SQLite ingest, lease, decode, delete), not a network.
"""

from __future__ import annotations

import gc
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry._logs import LogRecord, get_logger, get_logger_provider, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from benchmarks._harness import Row, ns_per_op, percentile
from otel_runctx import emit_outcome, run
from otel_runctx.exporters import OutcomeSpool
from otel_runctx.exporters.outcome import SkipDeliveredOutcomes
from otel_runctx.outcomes.active import activate_spool
from otel_runctx.outcomes.events import flush_outcome_events
from otel_runctx.outcomes.model import make_outcome
from otel_runctx.outcomes.records import (
    encode_record,
    encode_resource,
    resource_digest,
    split_line,
)
from otel_runctx.outcomes.store import SpoolStore
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor

TITLE = "Outcomes: emit_outcome on the caller's thread, and outcomes/s through the spool"


class _AckExporter(LogRecordExporter):
    """Acknowledges every batch at once and counts the records."""

    def __init__(self) -> None:
        self.received = 0

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        self.received += len(batch)
        return LogRecordExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


def _ensure_logger_provider() -> None:
    # A realistic pipeline: the SDK provider with a batch processor, as opentelemetry-instrument
    # builds it, its exporter wrapped as the default wiring wraps an OTLP one. If another
    # benchmark already set one, it is kept.
    if not isinstance(get_logger_provider(), LoggerProvider):
        provider = LoggerProvider(shutdown_on_exit=False)
        provider.add_log_record_processor(
            BatchLogRecordProcessor(SkipDeliveredOutcomes(_AckExporter()))
        )
        set_logger_provider(provider)


def _emit_latencies(count: int, pace_seconds: float) -> list[float]:
    """Time emit_outcome alone, one run per call; ``pace_seconds`` apart (0: back to back)."""
    samples: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for i in range(count):
            with run("bench", event_id=f"e{i}", customer_id="c"):
                start = time.perf_counter_ns()
                emit_outcome("success", value_type="tickets", value_amount=1, confidence=0.9)
                samples.append(time.perf_counter_ns() - start)
            if pace_seconds:
                time.sleep(pace_seconds)
    finally:
        gc.enable()
    return samples


def _outcome_attributes() -> dict[str, object]:
    """What an outcome record from ``emit_outcome`` above carries (run, outcome, usage)."""
    with run("bench", event_id="e-attributes", customer_id="c") as ctx:
        attributes: dict[str, object] = dict(ctx.to_span_attributes())
    outcome = make_outcome("success", value_type="tickets", value_amount=1, confidence=0.9)
    attributes.update(outcome.to_attributes())
    attributes["runctx.outcome.id"] = "0b8f0c9e-4c7d-5a57-9d1e-3f1f3b0a7c11"
    attributes["runctx.outcome.duration_ms"] = 0.25
    for name in ("span_count", "error_count", "llm_calls", "input_tokens", "output_tokens"):
        attributes[f"runctx.usage.{name}"] = 0
    return attributes


def _bare_and_ours(count: int, pace_seconds: float) -> tuple[list[float], list[float]]:
    """Latencies of a bare SDK ``Logger.emit`` of an outcome's attributes and of ours
    (``emit_outcome`` with the spool on), alternating call by call so both see the same load."""
    logger = get_logger("bench.bare")
    attributes = _outcome_attributes()
    bare: list[float] = []
    ours: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for i in range(count):
            record = LogRecord(body="run bench ended: success", attributes=dict(attributes))
            start = time.perf_counter_ns()
            logger.emit(record)
            bare.append(time.perf_counter_ns() - start)
            with run("bench", event_id=f"e{i}", customer_id="c"):
                start = time.perf_counter_ns()
                emit_outcome("success", value_type="tickets", value_amount=1, confidence=0.9)
                ours.append(time.perf_counter_ns() - start)
            if pace_seconds:
                time.sleep(pace_seconds)
    finally:
        gc.enable()
    return bare, ours


def _noise_floor(count: int, pace_seconds: float) -> list[float]:
    """Latencies of a fixed piece of pure-Python work (a JSON dump of a run's attributes, about
    what emit_outcome does itself), timed like emit_outcome: how much this machine alone
    stretches a p99."""
    with run("bench", event_id="noise", customer_id="c") as ctx:
        attributes = dict(ctx.to_span_attributes())
    samples: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(count):
            start = time.perf_counter_ns()
            json.dumps(attributes)
            json.dumps(attributes)
            samples.append(time.perf_counter_ns() - start)
            if pace_seconds:
                time.sleep(pace_seconds)
    finally:
        gc.enable()
    return samples


def _sample_record() -> tuple[LogRecord, Resource]:
    with run("bench", event_id="e", customer_id="c") as ctx:
        attributes = dict(ctx.to_span_attributes())
        attributes.update(make_outcome("success", value_amount=1).to_attributes())
    record = LogRecord(timestamp=1, observed_timestamp=1, body="b", attributes=attributes)
    return record, Resource.create({"service.name": "bench"})


def _ingest_row(directory: Path, record: LogRecord, resource: Resource, total: int) -> Row:
    """Journal lines into SQLite alone (the worker's intake step), 1,000 lines a transaction."""
    store = SpoolStore(directory / "ingest.sqlite3", 1 << 30)
    digest = resource_digest(resource)
    resource_body = encode_resource(resource).split(b"\t", 2)[2]
    lines = [encode_record(record, f"i-{i}", resource, ("b", None)) for i in range(total)]
    start = time.perf_counter()
    for chunk in range(0, total, 1000):
        rows = []
        for line in lines[chunk : chunk + 1000]:
            _, outcome_id, line_digest, body = split_line(line)
            rows.append((outcome_id, line_digest, body))
        store.ingest([(digest, resource_body)], rows, ("bench", chunk))
    elapsed = time.perf_counter() - start
    store.close()
    return Row(
        "journal -> SQLite ingest",
        elapsed * 1e9 / total,
        note=f"{total / elapsed:,.0f} outcomes/s into the store",
    )


def _usage_rows(quick: bool) -> list[Row]:
    """What the usage roll-up adds to each span of a run (an LLM span with gen_ai attributes)."""
    rows: list[Row] = []
    for name, processors in (
        ("LLM span in a run: stamping only", [RunContextSpanProcessor()]),
        ("LLM span in a run: + usage roll-up", [RunContextSpanProcessor(), UsageRollupProcessor()]),
    ):
        provider = TracerProvider()
        for processor in processors:
            provider.add_span_processor(processor)
        tracer = provider.get_tracer("bench")
        attributes = {
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
        }
        with run("bench", event_id="usage", customer_id="c"):
            cost = ns_per_op(
                lambda tracer=tracer, attributes=attributes: tracer.start_span(
                    "chat", attributes=attributes
                ).end(),
                ops=2_000 if quick else 20_000,
            )
        rows.append(Row(name, cost, rows[0].name if rows else None))
    return rows


def measure(quick: bool) -> list[Row]:
    _ensure_logger_provider()
    count = 1_000 if quick else 5_000
    pace = 0.0005  # 2,000 outcomes/s: a busy service, with idle gaps for the helper threads
    directory = Path(tempfile.mkdtemp(prefix="runctx-bench-"))
    rows: list[Row] = []
    previous = activate_spool(None)
    try:
        floor = _noise_floor(count, pace)
        rows.append(Row("noise floor: fixed JSON work, paced: p50", percentile(floor, 50)))
        rows.append(
            Row(
                "noise floor: fixed JSON work, paced: p99",
                percentile(floor, 99),
                "noise floor: fixed JSON work, paced: p50",
                "p99/p50 of constant work = this machine's jitter",
            )
        )
        off_paced = _emit_latencies(count, pace)
        off_burst = _emit_latencies(count, 0.0)
        flush_outcome_events(30)

        acks = _AckExporter()
        spool = OutcomeSpool(
            directory / "spool.sqlite3",
            max_bytes=1 << 30,
            exporter_factory=lambda: acks,
            batch_size=1024,
        )
        activate_spool(spool)
        spool.flush(5)
        bare_paced, ours_paced = _bare_and_ours(count, pace)
        for pct in (50, 99):
            base = f"bare SDK Logger.emit, {len(_outcome_attributes())} attributes, paced: p{pct}"
            rows.append(Row(base, percentile(bare_paced, pct)))
            rows.append(
                Row(
                    f"emit_outcome, spool on, alternating with it: p{pct}",
                    percentile(ours_paced, pct),
                    base,
                    "target <= 1.5x; durable before return",
                )
            )
        flush_outcome_events(30)
        on_paced = _emit_latencies(count, pace)
        on_burst = _emit_latencies(count, 0.0)
        for label, off, on, note in (
            ("paced at 2,000/s", off_paced, on_paced, "target p99 <= 50,000 ns"),
            ("back to back", off_burst, on_burst, "helper threads share the GIL"),
        ):
            for pct in (50, 99):
                base = f"emit_outcome, spool off, {label}: p{pct}"
                rows.append(Row(base, percentile(off, pct)))
                rows.append(
                    Row(
                        f"emit_outcome, spool on, {label}: p{pct}",
                        percentile(on, pct),
                        base,
                        note if pct == 99 else "",
                    )
                )
        flush_outcome_events(30)
        spool.flush(60)

        # Sustained into the spool: append records as fast as one thread can (durable on
        # return), then wait until the worker took all of them through SQLite to the exporter.
        record, resource = _sample_record()
        total = 20_000 if quick else 100_000
        acks.received = 0
        start = time.perf_counter()
        for i in range(total):
            spool.append(record, f"bench-{i}", resource, ("bench", None))
        appended = time.perf_counter()
        drained = spool.flush(300)
        end = time.perf_counter()
        rows.append(
            Row(
                "OutcomeSpool.append, sustained",
                (appended - start) * 1e9 / total,
                note=f"{total / (appended - start):,.0f} outcomes/s durable on return; "
                "target >= 10,000/s",
            )
        )
        rows.append(
            Row(
                "spool end to end (append, SQLite, ack, delete)",
                (end - start) * 1e9 / max(1, acks.received),
                note=f"{acks.received / (end - start):,.0f} outcomes/s through the worker"
                + ("" if drained else "; NOT drained in 300 s"),
            )
        )
        spool.shutdown()
        activate_spool(previous)
        rows.append(_ingest_row(directory, record, resource, total))
        rows.extend(_usage_rows(quick))
    finally:
        activate_spool(previous)
        shutil.rmtree(directory, ignore_errors=True)
    return rows
