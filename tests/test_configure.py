"""configure(): attach to the app's own providers, or build them from OTEL_* env; idempotent.

Global providers can be set once per process, so the global cases run in subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import configure, run


def test_explicit_providers_are_attached_once_and_never_replaced() -> None:
    tracer_provider = TracerProvider()
    spans = InMemorySpanExporter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider = LoggerProvider()
    logs = InMemoryLogRecordExporter()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))

    first = configure(
        tracer_provider=tracer_provider, logger_provider=logger_provider, propagator=False
    )
    second = configure(
        tracer_provider=tracer_provider, logger_provider=logger_provider, propagator=False
    )

    assert (first.tracer_provider, first.logger_provider) == ("attached", "attached")
    assert first.span_processors_added[0] == "RunContextSpanProcessor"
    assert (second.tracer_provider, second.logger_provider) == ("already", "already")
    assert second.propagator == "skipped"
    with run("wf", event_id="e", customer_id="c") as ctx:
        tracer_provider.get_tracer("t").start_span("mine").end()
        logger_provider.get_logger("t").emit(body="note")
    (span,) = spans.get_finished_spans()
    assert span.attributes is not None and span.attributes["runctx.run_id"] == ctx.run_id
    (log,) = logs.get_finished_logs()
    assert log.log_record.attributes is not None
    assert log.log_record.attributes["runctx.run_id"] == ctx.run_id


APP_WITHOUT_SETUP = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from otel_runctx import configure, run

    first = configure()
    second = configure()
    with run("wf", event_id="e1", customer_id="acme"):
        trace.get_tracer("app").start_span("inner").end()
    trace.get_tracer_provider().shutdown()
    print(json.dumps({"first": [first.tracer_provider, first.logger_provider, first.propagator],
                      "second": [second.tracer_provider, second.logger_provider,
                                 second.propagator]}))
    """
)

APP_WITH_OWN_PROVIDER = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from otel_runctx import configure, run
    from otel_runctx.exporters.jsonl import JsonlSpanExporter

    mine = TracerProvider()
    mine.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter()))
    trace.set_tracer_provider(mine)
    result = configure()
    with run("wf", event_id="e1", customer_id="acme"):
        trace.get_tracer("app").start_span("inner").end()
    print(json.dumps({"first": [result.tracer_provider, result.logger_provider, result.propagator],
                      "same_provider": trace.get_tracer_provider() is mine}))
    """
)


def _run_app(
    tmp_path: Path, source: str, extra_env: dict[str, str] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    app = tmp_path / "app.py"
    app.write_text(source)
    out = tmp_path / "out.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(
        OTEL_TRACES_EXPORTER="runctx_jsonl",
        OTEL_LOGS_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_RUNCTX_JSONL_PATH=str(out),
        **(extra_env or {}),
    )
    done = subprocess.run(
        [sys.executable, str(app)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return json.loads(done.stdout.strip().splitlines()[-1]), records


def _stamped(records: list[dict[str, Any]], name: str) -> bool:
    (record,) = [r for r in records if r["name"] == name]
    return record["attributes"].get("runctx.customer_id") == "acme"


def test_without_any_setup_it_builds_the_sdk_from_env_once(tmp_path: Path) -> None:
    result, records = _run_app(tmp_path, APP_WITHOUT_SETUP)
    assert result["first"][:2] == ["created", "created"]
    assert result["second"][:2] == ["already", "already"]
    assert result["second"][2] == "already"  # the first call installed the propagator
    assert _stamped(records, "inner") and _stamped(records, "run wf")


def test_an_apps_own_provider_is_kept_and_gets_our_processor(tmp_path: Path) -> None:
    result, records = _run_app(tmp_path, APP_WITH_OWN_PROVIDER)
    assert result["first"][0] == "attached"
    assert result["first"][1] == "absent"  # the app built no logger provider; none is forced on it
    assert result["same_provider"] is True
    assert _stamped(records, "inner")


def test_an_explicit_otel_propagators_is_kept(tmp_path: Path) -> None:
    result, _ = _run_app(tmp_path, APP_WITHOUT_SETUP, {"OTEL_PROPAGATORS": "tracecontext"})
    assert result["first"][2] == "kept"
