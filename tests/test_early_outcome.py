"""An early outcome does not freeze usage, and is durable once emit_outcome returns."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from otel_runctx import emit_outcome, run
from otel_runctx.exporters import OutcomeSpool
from otel_runctx.outcomes.active import activate_spool
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from tests.test_spool import RecordingExporter, make_spool

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tracer() -> Tracer:
    private = TracerProvider()
    private.add_span_processor(RunContextSpanProcessor())
    private.add_span_processor(UsageRollupProcessor())
    return private.get_tracer("early")


@pytest.fixture
def spooled(tmp_path: Path) -> Iterator[tuple[OutcomeSpool, RecordingExporter]]:
    exporter = RecordingExporter()
    spool = make_spool(tmp_path / "spool.db", exporter)
    previous = activate_spool(spool)
    yield spool, exporter
    activate_spool(previous)
    spool.shutdown(timeout=2)


def llm(tracer: Tracer, tokens_in: int) -> None:
    with tracer.start_as_current_span("chat") as span:
        span.set_attribute("gen_ai.request.model", "gpt-4o")
        span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
        span.set_attribute("gen_ai.usage.output_tokens", 1)


def test_the_final_record_replaces_the_held_pending_one(
    tracer: Tracer, spooled: tuple[OutcomeSpool, RecordingExporter]
) -> None:
    spool, exporter = spooled
    with run("agent", event_id="E", customer_id="c") as ctx:
        llm(tracer, 10)
        assert emit_outcome("success", value_amount=1.5)
        # Durable now: the pending record is in this process's journal ...
        journals = list(spool.intake_directory.glob("*.journal"))
        assert any(ctx.run_id.encode() in path.read_bytes() for path in journals)
        # ... and held: the worker drains everything else but does not send it.
        assert spool.flush(timeout=10)
        assert exporter.received == []
        llm(tracer, 90)
    assert spool.flush(timeout=10)
    (record,) = exporter.received  # one record per outcome reaches the collector
    attributes = record.log_record.attributes or {}
    assert attributes["runctx.run_id"] == ctx.run_id
    assert attributes["runctx.usage.input_tokens"] == 100
    assert attributes["runctx.usage.final"] is True
    assert attributes["runctx.outcome.value_amount"] == 1.5


def test_a_crash_after_an_early_outcome_still_delivers_it(tmp_path: Path) -> None:
    spool_path = tmp_path / "spool.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from otel_runctx import emit_outcome, run
        from otel_runctx.exporters import OutcomeSpool
        from otel_runctx.outcomes.active import activate_spool
        from tests.test_spool import RecordingExporter

        activate_spool(OutcomeSpool(Path({str(spool_path)!r}), max_bytes=1 << 30,
                       exporter_factory=lambda: RecordingExporter(failing=True)))
        with run("agent", event_id="E-crash", customer_id="c"):
            emit_outcome("partial", reason="half done")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = subprocess.run([sys.executable, "-c", script], cwd=REPO, timeout=60)
    assert child.returncode == -signal.SIGKILL
    exporter = RecordingExporter()
    spool = make_spool(spool_path, exporter)
    try:
        assert spool.flush(timeout=10)
        (record,) = exporter.received
        attributes = record.log_record.attributes or {}
        assert attributes["runctx.event_id"] == "E-crash"
        assert attributes["runctx.outcome.status"] == "partial"
        assert attributes["runctx.usage.final"] is False  # the run never ended
    finally:
        spool.shutdown(timeout=2)


class ContextSpy(RecordingExporter):
    """Notes, for each export, the run and the suppression flag the spool worker sends under."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[object, bool]] = []

    def export(self, batch: Any) -> Any:
        from opentelemetry.instrumentation.utils import is_instrumentation_enabled

        from otel_runctx import get_run_context

        self.seen.append((get_run_context(), is_instrumentation_enabled()))
        return super().export(batch)


def test_the_spool_worker_sends_outside_any_run_with_instrumentation_suppressed(
    tmp_path: Path, instrumented: None
) -> None:
    # Thread instrumentation (ours here; the contrib threading one does the same) copies the
    # starter's context into a new thread, so a spool worker first started inside a run would
    # send (and be traced) as part of that run.
    spy = ContextSpy()
    previous = activate_spool(None)
    try:
        with run("agent", event_id="E", customer_id="c"):
            spool = make_spool(tmp_path / "spool.db", spy)  # worker thread starts in the run
            activate_spool(spool)
        assert spool.flush(timeout=10)
    finally:
        activate_spool(previous)
    spool.shutdown(timeout=2)
    assert spy.seen and all(seen == (None, False) for seen in spy.seen)
