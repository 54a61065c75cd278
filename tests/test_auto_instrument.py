"""Zero-code: real ``opentelemetry-instrument`` subprocesses load our entry points and stamp.

Each test writes a tiny app, runs it under the real ``opentelemetry-instrument`` of this
environment with the ``runctx_jsonl`` exporters, and reads the JSONL it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
INSTRUMENT = BIN / "opentelemetry-instrument"

APP = textwrap.dedent(
    """
    import json, sys
    from opentelemetry import trace, propagate
    from opentelemetry._logs import get_logger, get_logger_provider
    from otel_runctx import run

    tracer = trace.get_tracer("app")
    with run("checkout", event_id="evt-1", customer_id="acme"):
        with tracer.start_as_current_span("inner"):
            get_logger("app").emit(body="inside the run", event_name="app.note")
    with tracer.start_as_current_span("outside"):
        pass
    provider = trace.get_tracer_provider()
    processors = [type(p).__name__ for p in provider._active_span_processor._span_processors]
    logs = getattr(get_logger_provider(), "_multi_log_record_processor", None)
    log_processors = [type(p).__name__ for p in getattr(logs, "_log_record_processors", ())]
    composite = propagate.get_global_textmap()
    propagators = [type(p).__name__ for p in getattr(composite, "_propagators", [composite])]
    print(json.dumps({"span_processors": processors, "log_processors": log_processors,
                      "propagators": propagators}))
    """
)

# A stand-in for another vendor's configurator: it builds the SDK its own way and knows nothing
# of otel-runctx. Its log pipeline exports synchronously, so a stamping processor added behind
# it would be too late.
VENDOR_MODULE = textwrap.dedent(
    """
    from opentelemetry import trace, _logs
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from otel_runctx.exporters.jsonl import JsonlSpanExporter, JsonlLogRecordExporter

    class VendorConfigurator:
        def configure(self, **kwargs):
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(JsonlSpanExporter()))
            trace.set_tracer_provider(tracer_provider)
            logger_provider = LoggerProvider()
            logger_provider.add_log_record_processor(SimpleLogRecordProcessor(JsonlLogRecordExporter()))
            _logs.set_logger_provider(logger_provider)
    """
)


def _vendor_package(root: Path) -> Path:
    """Install (by path) a distribution whose only entry point is a configurator ``vendor``."""
    site = root / "vendor_site"
    dist_info = site / "vendor_cfg-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (site / "vendor_cfg.py").write_text(VENDOR_MODULE)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: vendor-cfg\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[opentelemetry_configurator]\nvendor = vendor_cfg:VendorConfigurator\n"
    )
    return site


def _run_instrumented(
    tmp_path: Path, env_overrides: dict[str, str], pythonpath: Path | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    out = tmp_path / "telemetry.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH"))}
    env.update(
        OTEL_TRACES_EXPORTER="runctx_jsonl",
        OTEL_LOGS_EXPORTER="runctx_jsonl",
        OTEL_METRICS_EXPORTER="none",
        OTEL_RUNCTX_JSONL_PATH=str(out),
        OTEL_BSP_SCHEDULE_DELAY="50",
        OTEL_BLRP_SCHEDULE_DELAY="50",
    )
    env.update(env_overrides)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    done = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return report, records


def _by_name(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"] if r["signal"] == "span" else r["event_name"]: r for r in records}


def _assert_in_run_stamped(records: list[dict[str, Any]]) -> None:
    named = _by_name(records)
    assert {"run checkout", "inner", "outside", "app.note"} <= named.keys(), named.keys()
    run_id = named["run checkout"]["attributes"]["runctx.run_id"]
    for name in ("inner", "app.note"):
        assert named[name]["attributes"]["runctx.run_id"] == run_id, name
        assert named[name]["attributes"]["runctx.customer_id"] == "acme"
    assert not any(k.startswith("runctx.") for k in named["outside"]["attributes"])


def test_our_distro_and_configurator_stamp_spans_and_logs_once(tmp_path: Path) -> None:
    report, records = _run_instrumented(tmp_path, {})
    _assert_in_run_stamped(records)
    # Our processor comes first, once, even though the pre-instrument hook also ran.
    assert report["span_processors"][0] == "RunContextSpanProcessor"
    assert report["span_processors"].count("RunContextSpanProcessor") == 1
    assert report["log_processors"][0] == "RunContextLogProcessor"
    assert report["log_processors"].count("RunContextLogProcessor") == 1


def test_another_vendors_configurator_is_rescued_by_the_pre_instrument_hook(
    tmp_path: Path,
) -> None:
    site = _vendor_package(tmp_path)
    report, records = _run_instrumented(
        tmp_path, {"OTEL_PYTHON_CONFIGURATOR": "vendor"}, pythonpath=site
    )
    _assert_in_run_stamped(records)
    # Put in front of the vendor's synchronous exporting processor, or logs would go unstamped.
    assert report["span_processors"] == [
        "RunContextSpanProcessor",
        "UsageRollupProcessor",
        "SimpleSpanProcessor",
    ]
    assert report["log_processors"] == ["RunContextLogProcessor", "SimpleLogRecordProcessor"]


def test_distro_installs_run_propagation_unless_the_user_chose_propagators(
    tmp_path: Path,
) -> None:
    default_report, _ = _run_instrumented(tmp_path, {})
    assert default_report["propagators"][0] == "TraceContextTextMapPropagator"
    # The run propagator when it is installed; W3C baggage until then.
    assert default_report["propagators"][1] in ("RunContextPropagator", "W3CBaggagePropagator")
    assert len(default_report["propagators"]) == 2

    # Fact: a propagator name that is not installed (say b3multi) is not skipped: importing
    # opentelemetry.propagate raises ValueError and opentelemetry-instrument itself exits 1.
    chosen_report, _ = _run_instrumented(tmp_path, {"OTEL_PROPAGATORS": "tracecontext"})
    assert chosen_report["propagators"] == ["TraceContextTextMapPropagator"]


def test_our_variables_are_opentelemetry_instrument_flags(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(INSTRUMENT), "--help"], capture_output=True, text=True, timeout=60, check=True
    )
    for flag in ("--runctx_jsonl_path", "--runctx_environment", "--runctx_propagation_mode"):
        assert flag in done.stdout


def test_a_flag_sets_the_variable_for_the_app(tmp_path: Path) -> None:
    app = tmp_path / "app.py"
    app.write_text("import os; print(os.environ['OTEL_RUNCTX_ENVIRONMENT'])\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_LOGS_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    done = subprocess.run(
        [str(INSTRUMENT), "--runctx_environment", "staging", sys.executable, str(app)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "staging"


@pytest.mark.parametrize("exporter", ["runctx_jsonl"])
def test_exporter_entry_points_resolve(exporter: str) -> None:
    from importlib.metadata import entry_points

    for group in ("opentelemetry_traces_exporter", "opentelemetry_logs_exporter"):
        (point,) = entry_points(group=group, name=exporter)
        assert point.load().__module__ == "otel_runctx.exporters.jsonl"


def test_a_declarative_config_file_decides_propagators_and_is_still_stamped(
    tmp_path: Path,
) -> None:
    # Fact: declarative configuration always sets the global propagator to exactly what the
    # file lists (an empty composite when it lists none), so otel-runctx leaves it alone.
    config = tmp_path / "otel.yaml"
    config.write_text(
        textwrap.dedent(
            """
            file_format: "1.0"
            tracer_provider:
              processors:
                - simple:
                    exporter:
                      console: {}
            propagator:
              composite:
                - tracecontext: {}
            """
        )
    )
    report, _ = _run_instrumented(tmp_path, {"OTEL_CONFIG_FILE": str(config)})
    assert report["propagators"] == ["TraceContextTextMapPropagator"]
    assert report["span_processors"] == [
        "RunContextSpanProcessor",
        "UsageRollupProcessor",
        "SimpleSpanProcessor",
    ]
