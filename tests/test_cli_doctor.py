"""otel-runctx doctor inspects the live process: ok when wired, non-zero with a fix when not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

BIN = Path(sys.executable).parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_METRICS_EXPORTER="none", **extra)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def test_under_opentelemetry_instrument_everything_is_wired(tmp_path: Path) -> None:
    done = _run(
        [str(BIN / "opentelemetry-instrument"), str(BIN / "otel-runctx"), "doctor", "--json"],
        _env(
            OTEL_TRACES_EXPORTER="runctx_jsonl",
            OTEL_LOGS_EXPORTER="runctx_jsonl",
            OTEL_RUNCTX_JSONL_PATH=str(tmp_path / "x.jsonl"),
        ),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    findings = {f["check"]: f for f in report["findings"]}
    assert findings["span processors"]["level"] == "ok"
    assert findings["span processors"]["detail"].startswith("RunContextSpanProcessor -> ")
    assert findings["log record processors"]["level"] == "ok"
    assert findings["threads"]["level"] == "ok"  # opentelemetry-instrument loaded runctx_executors
    assert report["settings"]["jsonl_path"] == str(tmp_path / "x.jsonl")
    assert report["otel_env"]["OTEL_TRACES_EXPORTER"] == "runctx_jsonl"


def test_without_any_setup_it_fails_and_says_how_to_fix() -> None:
    done = _run([sys.executable, "-m", "otel_runctx", "doctor"], _env())
    assert done.returncode == 1
    assert "PROBLEM  tracer provider: no SDK TracerProvider is set" in done.stdout
    assert "opentelemetry-instrument" in done.stdout and "configure()" in done.stdout


def test_a_provider_without_our_processor_is_a_problem_with_the_fix() -> None:
    app = textwrap.dedent(
        """
        import sys
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, ConsoleSpanExporter
        from otel_runctx.cli.command import main

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
        sys.exit(main(["doctor"]))
        """
    )
    done = _run([sys.executable, "-c", app], _env())
    assert done.returncode == 1
    assert "RunContextSpanProcessor is missing: SimpleSpanProcessor" in done.stdout
    assert "otel_runctx.configure()" in done.stdout


def test_doctor_configure_builds_from_env_and_passes() -> None:
    done = _run(
        [str(BIN / "otel-runctx"), "doctor", "--configure"],
        _env(OTEL_TRACES_EXPORTER="console", OTEL_LOGS_EXPORTER="console"),
    )
    assert done.returncode == 0, done.stdout
    assert (
        "ok       span processors: RunContextSpanProcessor -> UsageRollupProcessor -> "
        "BatchSpanProcessor" in done.stdout
    )
    # configure() does not patch threads (that stays opt-in): doctor says how to turn it on.
    assert "WARN     threads: ThreadPoolExecutor jobs and new threads start without" in done.stdout


def test_a_bad_setting_is_a_problem_naming_the_variable() -> None:
    done = _run(
        [str(BIN / "otel-runctx"), "doctor", "--configure"],
        _env(OTEL_TRACES_EXPORTER="none", OTEL_RUNCTX_PROPAGATION_MODE="fat"),
    )
    assert done.returncode == 1
    assert "OTEL_RUNCTX_PROPAGATION_MODE='fat' is not valid" in done.stdout


def test_secrets_in_otel_variables_are_not_printed() -> None:
    done = _run(
        [str(BIN / "otel-runctx"), "doctor", "--json"],
        _env(OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer hunter2"),
    )
    assert "hunter2" not in done.stdout
    assert json.loads(done.stdout)["otel_env"]["OTEL_EXPORTER_OTLP_HEADERS"] == "<set, redacted>"


def test_baggage_next_to_the_run_propagator_is_a_problem(tmp_path: Path) -> None:
    done = _run(
        [str(BIN / "opentelemetry-instrument"), str(BIN / "otel-runctx"), "doctor"],
        _env(
            OTEL_PROPAGATORS="tracecontext,baggage,runctx",
            OTEL_TRACES_EXPORTER="console",
            OTEL_LOGS_EXPORTER="console",
        ),
    )
    assert done.returncode == 1, done.stdout
    assert "both write the `baggage` header" in done.stdout
    assert "OTEL_PROPAGATORS=tracecontext,runctx" in done.stdout


def test_by_default_the_run_propagator_replaces_baggage(tmp_path: Path) -> None:
    done = _run(
        [str(BIN / "opentelemetry-instrument"), str(BIN / "otel-runctx"), "doctor", "--json"],
        _env(OTEL_TRACES_EXPORTER="console", OTEL_LOGS_EXPORTER="console"),
    )
    findings = {f["check"]: f for f in json.loads(done.stdout)["findings"]}
    assert findings["propagators"]["detail"] == (
        "TraceContextTextMapPropagator, RunContextPropagator"
    )


def test_signing_keys_in_settings_are_not_printed() -> None:
    done = _run(
        [str(BIN / "otel-runctx"), "doctor", "--json"],
        _env(OTEL_RUNCTX_SIGNING_KEYS="k1:" + "s3cr3tv4lue" * 4),
    )
    assert "s3cr3tv4lue" not in done.stdout, done.stdout
    assert json.loads(done.stdout)["settings"]["signing_keys"] == "<1 set, redacted>"
