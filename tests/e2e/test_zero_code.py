"""Zero-code and configure(): every in-run span is stamped, in every way an app can be set up.

The same small app runs under the real ``opentelemetry-instrument`` (or calls ``configure()``
itself) and exports OTLP/gRPC through a real collector (rotel) to the test's sink:

1. only otel-runctx installed: its distro and configurator are picked up on their own;
2. ``opentelemetry-distro`` installed too, ours chosen with OTEL_PYTHON_DISTRO/CONFIGURATOR;
3. the stock distro and configurator chosen: ours arrive only through the pre-instrument hook;
4. ``OTEL_CONFIG_FILE`` declarative configuration (opentelemetry-configuration), with our
   configurator and with the stock one;
5. no opentelemetry-instrument: the app builds its own TracerProvider and calls configure().

``opentelemetry-distro`` is not a dev dependency on purpose (with two distros installed,
``opentelemetry-instrument`` picks whichever it finds first, and setup 1 would not be "only
otel-runctx"): setups 2 and 3 install it into a separate directory put on PYTHONPATH.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from .harness import AppRunner, Collector, Sink, fast_export_env, instrumented, python

IN_RUN_SPANS = 5

APP_BODY = textwrap.dedent(
    """
    import json
    from opentelemetry import trace
    from opentelemetry._logs import get_logger
    from otel_runctx import run

    tracer = trace.get_tracer("zero-code-app")
    with run("zero-code", event_id="evt-zc", customer_id="cust-zc", tenant_id="tenant-zc") as ctx:
        for index in range(IN_RUN_SPANS):
            with tracer.start_as_current_span(f"in-run-{index}"):
                pass
        get_logger("zero-code-app").emit(body="inside the run", event_name="zero_code.note")
    with tracer.start_as_current_span("outside-run"):
        pass
    print(json.dumps({"run_id": ctx.run_id}), flush=True)
    """
).replace("IN_RUN_SPANS", str(IN_RUN_SPANS))

# Setup 5: the app's own SDK setup in code, then configure().
OWN_PROVIDER_PRELUDE = textwrap.dedent(
    """
    from opentelemetry import trace, _logs
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    import otel_runctx

    app_tracer_provider = TracerProvider()
    app_tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(app_tracer_provider)
    app_logger_provider = LoggerProvider()
    app_logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    _logs.set_logger_provider(app_logger_provider)
    result = otel_runctx.configure()
    assert result.tracer_provider == "attached", result
    assert trace.get_tracer_provider() is app_tracer_provider
    """
)

DECLARATIVE_CONFIG = textwrap.dedent(
    """
    file_format: "1.0"
    resource:
      attributes:
        - name: service.name
          value: zero-code-declarative
    tracer_provider:
      processors:
        - batch:
            schedule_delay: 50
            exporter:
              otlp_grpc:
                endpoint: {endpoint}
    logger_provider:
      processors:
        - batch:
            schedule_delay: 50
            exporter:
              otlp_grpc:
                endpoint: {endpoint}
    """
)


@pytest.fixture(scope="session")
def stock_distro_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``opentelemetry-distro`` (same version as opentelemetry-instrumentation) in its own dir."""
    target = tmp_path_factory.mktemp("stock-distro")
    version = importlib.metadata.version("opentelemetry-instrumentation")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), f"opentelemetry-distro=={version}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"pip could not install opentelemetry-distro:\n{done.stderr}"
    return target


def _exported_through(collector: Collector) -> dict[str, str]:
    return {
        **collector.otlp_env("grpc"),
        **fast_export_env(),
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "zero-code-app",
    }


def _run_app(
    apps: AppRunner, tmp_path: Path, env: Mapping[str, str], *, zero_code: bool = True,
    prelude: str = "",
) -> str:  # fmt: skip
    script = tmp_path / "zero_code_app.py"
    script.write_text(prelude + APP_BODY)
    argv = instrumented(script) if zero_code else python(script)
    app = apps.run(argv, env=dict(env), cwd=tmp_path, timeout=60)
    return str(json.loads(app.output().strip().splitlines()[-1])["run_id"])


def _assert_all_in_run_spans_stamped(sink: Sink, run_id: str) -> None:
    spans = sink.wait_for_spans(lambda s: s["name"].startswith("in-run-"), count=IN_RUN_SPANS)
    run_span = sink.wait_for_span("run zero-code")
    outside = sink.wait_for_span("outside-run")
    in_run = [*spans, run_span]
    stamped = [s for s in in_run if s["attributes"].get("runctx.run_id") == run_id]
    assert len(stamped) == len(in_run) == IN_RUN_SPANS + 1, sink.summary()
    for span in in_run:
        assert span["attributes"]["runctx.customer_id"] == "cust-zc"
        assert span["attributes"]["runctx.tenant_id"] == "tenant-zc"
        assert span["attributes"]["runctx.event_id"] == "evt-zc"
    assert not any(key.startswith("runctx.") for key in outside["attributes"])
    note = sink.wait_for_log("zero_code.note")
    assert note["attributes"]["runctx.run_id"] == run_id
    if importlib.util.find_spec("otel_runctx.exporters.outcome") is not None:
        outcome = sink.wait_for_log(
            predicate=lambda r: (
                r["attributes"].get("runctx.run_id") == run_id
                and "runctx.outcome.status" in r["attributes"]
            )
        )
        assert outcome["attributes"]["runctx.outcome.status"] == "success"


def test_only_otel_runctx_installed(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    installed = {d.metadata["Name"] for d in importlib.metadata.distributions()}
    assert "opentelemetry-distro" not in installed, "setup 1 needs otel-runctx as the only distro"
    run_id = _run_app(apps, tmp_path, _exported_through(collector))
    _assert_all_in_run_spans_stamped(sink, run_id)


def test_stock_distro_installed_and_ours_chosen(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path, stock_distro_site: Path
) -> None:
    env = {
        **_exported_through(collector),
        "PYTHONPATH": str(stock_distro_site),
        "OTEL_PYTHON_DISTRO": "runctx",
        "OTEL_PYTHON_CONFIGURATOR": "runctx",
    }
    run_id = _run_app(apps, tmp_path, env)
    _assert_all_in_run_spans_stamped(sink, run_id)


def test_stock_distro_and_configurator_ours_only_through_the_hook(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path, stock_distro_site: Path
) -> None:
    env = {
        **_exported_through(collector),
        "PYTHONPATH": str(stock_distro_site),
        "OTEL_PYTHON_DISTRO": "distro",
        "OTEL_PYTHON_CONFIGURATOR": "configurator",
    }
    run_id = _run_app(apps, tmp_path, env)
    _assert_all_in_run_spans_stamped(sink, run_id)


@pytest.mark.parametrize("configurator", ["runctx", "configurator"])
def test_declarative_config_file(
    sink: Sink,
    collector: Collector,
    apps: AppRunner,
    tmp_path: Path,
    stock_distro_site: Path,
    configurator: str,
) -> None:
    # opentelemetry-configuration (a dev dependency) implements OTEL_CONFIG_FILE for SDK 1.45;
    # the SDK ignores configurator kwargs then, so stamping relies on attaching afterwards.
    config = tmp_path / "otel.yaml"
    config.write_text(DECLARATIVE_CONFIG.format(endpoint=collector.grpc_endpoint))
    env = {
        **fast_export_env(),
        "OTEL_CONFIG_FILE": str(config),
        "OTEL_PYTHON_CONFIGURATOR": configurator,
        "PYTHONPATH": str(stock_distro_site),
        "OTEL_PYTHON_DISTRO": "runctx" if configurator == "runctx" else "distro",
    }
    run_id = _run_app(apps, tmp_path, env)
    _assert_all_in_run_spans_stamped(sink, run_id)
    run_span = sink.wait_for_span("run zero-code")
    assert run_span["resource"]["service.name"] == "zero-code-declarative"


def test_own_provider_and_configure(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    env = {**collector.otlp_env("grpc"), **fast_export_env()}
    run_id = _run_app(apps, tmp_path, env, zero_code=False, prelude=OWN_PROVIDER_PRELUDE)
    _assert_all_in_run_spans_stamped(sink, run_id)
