"""The runctx_jsonl exporters: one JSON object per line, whole lines only, spans and logs."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import StatusCode

from otel_runctx import run
from otel_runctx import settings as runctx_settings
from otel_runctx.exporters.jsonl import JsonlLogRecordExporter, JsonlSpanExporter
from otel_runctx.processors import RunContextLogProcessor, RunContextSpanProcessor


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _pipelines(path: Path) -> tuple[TracerProvider, LoggerProvider]:
    resource = Resource.create({"service.name": "jsonl-test"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(RunContextSpanProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter(str(path))))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(RunContextLogProcessor())
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(JsonlLogRecordExporter(str(path)))
    )
    return tracer_provider, logger_provider


def test_spans_and_logs_share_one_file_with_ids_status_attributes_and_resource(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl"
    tracer_provider, logger_provider = _pipelines(path)
    tracer = tracer_provider.get_tracer("t")

    # run() opens its own span on the global provider; "request" is this pipeline's root.
    with pytest.raises(RuntimeError):
        with run("wf", event_id="e1", customer_id="acme") as ctx:
            with tracer.start_as_current_span("request"):
                with tracer.start_as_current_span("step") as span:
                    span.set_attribute("blob", b"\x01\x02")
                    span.set_attribute("tags", ("a", "b"))
                    logger_provider.get_logger("t").emit(body="done", event_name="runctx.outcome")
                raise RuntimeError("boom")

    records = _read(path)
    spans = {r["name"]: r for r in records if r["signal"] == "span"}
    (log,) = [r for r in records if r["signal"] == "log"]
    step, root = spans["step"], spans["request"]
    assert step["parent_span_id"] == root["span_id"]
    assert step["trace_id"] == root["trace_id"] == log["trace_id"]
    assert log["span_id"] == step["span_id"]
    assert len(step["trace_id"]) == 32 and len(step["span_id"]) == 16
    assert step["attributes"]["runctx.run_id"] == ctx.run_id
    assert step["attributes"]["tags"] == ["a", "b"]
    assert step["attributes"]["blob"] == "0102"
    assert root["status"]["code"] == StatusCode.ERROR.name
    assert root["duration_ms"] >= 0
    assert step["resource"]["service.name"] == "jsonl-test"
    assert log["event_name"] == "runctx.outcome"
    assert log["attributes"]["runctx.customer_id"] == "acme"


def test_concurrent_exports_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    tracer_provider, logger_provider = _pipelines(path)
    tracer = tracer_provider.get_tracer("t")
    logger = logger_provider.get_logger("t")
    threads_count, per_thread = 8, 200
    barrier = threading.Barrier(threads_count)

    def work(index: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            with tracer.start_as_current_span(f"s-{index}-{n}") as span:
                span.set_attribute("padding", "x" * 2000)
                logger.emit(body=f"l-{index}-{n}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    records = _read(path)  # json.loads fails on any torn or merged line
    assert sum(r["signal"] == "span" for r in records) == threads_count * per_thread
    assert sum(r["signal"] == "log" for r in records) == threads_count * per_thread


def test_built_with_no_arguments_it_appends_to_the_configured_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "nested" / "spans.jsonl"
    runctx_settings.reload_settings({"OTEL_RUNCTX_JSONL_PATH": str(target)})
    try:
        exporter = JsonlSpanExporter()
        assert exporter.path == str(target)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.get_tracer("t").start_span("one").end()
        provider.shutdown()
    finally:
        runctx_settings.reload_settings({})
    assert [r["name"] for r in _read(target)] == ["one"]


def test_default_path_is_in_the_working_directory() -> None:
    assert runctx_settings.load_settings({}).jsonl_path == "otel-runctx.jsonl"


def test_export_after_shutdown_fails_without_raising(tmp_path: Path) -> None:
    exporter = JsonlSpanExporter(str(tmp_path / "x.jsonl"))
    exporter.shutdown()
    exporter.shutdown()
    assert exporter.export([]).name == "FAILURE"


def test_an_unwritable_path_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    exporter = JsonlSpanExporter(str(blocker / "sub" / "x.jsonl"))
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("lost").end()  # must not raise
    from otel_runctx import stats

    assert stats.snapshot().get("errors.jsonl.export_spans", 0) >= 1


def test_several_processes_appending_to_one_file_never_tear_lines(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "shared.jsonl"
    writer = (
        "import sys\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import BatchSpanProcessor\n"
        "from otel_runctx.exporters.jsonl import JsonlSpanExporter\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(BatchSpanProcessor(JsonlSpanExporter(sys.argv[1]),"
        " schedule_delay_millis=1))\n"
        "tracer = provider.get_tracer('t')\n"
        "for n in range(2000):\n"
        "    tracer.start_span(f'{sys.argv[2]}-{n}', attributes={'pad': 'x' * 3000}).end()\n"
        "provider.shutdown()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), f"p{i}"]) for i in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    names = [r["name"] for r in _read(path)]  # json.loads fails on a torn line
    assert len(names) == len(set(names)) == 4 * 2000
