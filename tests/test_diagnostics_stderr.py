"""otel-runctx's own warnings reach stderr whatever the app's logging does with them.

Before: with the root logger routed into OpenTelemetry (as ``opentelemetry-instrumentation-
logging`` / ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED`` set it up) and an outcome-only
log exporter, 2,423 dropped outcomes printed nothing at all.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_runctx import stats

ROOT = Path(__file__).parent.parent


def test_a_warning_is_one_prefixed_stderr_line_rate_limited(
    capfd: pytest.CaptureFixture[str],
) -> None:
    stats.reset()
    for _ in range(50):
        stats.report_error("test.place", ValueError("bad"), "something broke")
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "test.place" in line]
    assert lines == [
        "otel-runctx: test.place failed: something broke: ValueError: bad "
        "(counted as errors.test.place; said at most every 60 s)"
    ]
    assert stats.snapshot()["errors.test.place"] == 50


def test_not_printed_twice_when_logging_already_prints_to_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    stats.reset()
    handler = logging.StreamHandler(sys.stderr)
    logging.getLogger().addHandler(handler)
    try:
        stats.report_error("test.twice", message="once")
    finally:
        logging.getLogger().removeHandler(handler)
    err = capfd.readouterr().err
    assert err.count("test.twice failed") == 1


ROUTED_INTO_OTEL = """
    import logging
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from otel_runctx import stats
    from otel_runctx.exporters import OutcomeExporter

    # The root logger goes into OTel only, and the only log exporter keeps outcome events.
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(OutcomeExporter()))
    set_logger_provider(provider)
    root = logging.getLogger()
    root.handlers[:] = [LoggingHandler(logger_provider=provider)]
    root.setLevel(logging.INFO)
    stats.report_error("outcome_spool.full", message="dropped the 2423 oldest outcome(s)")
    print("DONE", flush=True)
"""


def test_reaches_stderr_when_the_root_logger_goes_into_an_outcome_only_pipeline() -> None:
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ROUTED_INTO_OTEL)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"OTEL_RUNCTX_OUTCOME_SPOOL": "off", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert "DONE" in child.stdout
    assert (
        "otel-runctx: outcome_spool.full failed: dropped the 2423 oldest outcome(s)" in child.stderr
    )
