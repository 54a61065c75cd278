"""``otel-runctx report`` on what the collector tier wrote equals the report on our own file.

The demo pipeline runs under the real ``opentelemetry-instrument`` and exports every span and
log record twice: to a local runctx_jsonl file, and over OTLP/gRPC through rotel into a sink
that writes OTLP JSON lines (the collector ``file`` exporter's format). Both reports must agree
on every figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .harness import (
    REPO_ROOT,
    AppRunner,
    Collector,
    Sink,
    fast_export_env,
    instrumented,
    wait_for,
)


def _report(*paths: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "otel_runctx", "report", "--json", *map(str, paths)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    document: dict[str, Any] = json.loads(done.stdout)
    document.pop("files")
    return document


def _signals(path: Path) -> tuple[int, int]:
    """(spans, log records) in a runctx_jsonl file."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(r["signal"] == "span" for r in lines), sum(r["signal"] == "log" for r in lines)


def _otlp_signals(path: Path) -> tuple[int, int]:
    if not path.exists():
        return 0, 0
    spans = logs = 0
    for line in path.read_text().splitlines():
        request = json.loads(line)
        for resource in request.get("resourceSpans", []):
            spans += sum(len(scope.get("spans", [])) for scope in resource["scopeSpans"])
        for resource in request.get("resourceLogs", []):
            logs += sum(len(scope.get("logRecords", [])) for scope in resource["scopeLogs"])
    return spans, logs


def test_report_on_the_collectors_otlp_json_equals_the_direct_file(
    apps: AppRunner, tmp_path: Path
) -> None:
    direct, otlp = tmp_path / "direct.jsonl", tmp_path / "collector" / "otlp.jsonl"
    otlp.parent.mkdir()
    with Sink(json_lines=otlp) as sink:
        collector = Collector(sink.endpoint, log_path=tmp_path / "rotel.log")
        collector.start()
        try:
            apps.run(
                instrumented(
                    REPO_ROOT / "examples" / "support_tickets.py",
                    "--ground-truth",
                    str(tmp_path / "truth.json"),
                ),
                env={
                    **collector.otlp_env("grpc"),
                    **fast_export_env(),
                    "OTEL_SERVICE_NAME": "support-ticket-demo",
                    "OTEL_METRICS_EXPORTER": "none",
                    "OTEL_TRACES_EXPORTER": "otlp,runctx_jsonl",
                    "OTEL_LOGS_EXPORTER": "otlp,runctx_jsonl",
                    "OTEL_RUNCTX_JSONL_PATH": str(direct),
                    "OTEL_RUNCTX_PRICES": str(REPO_ROOT / "examples" / "prices.json"),
                },
                timeout=120,
            )
            expected = _signals(direct)
            assert expected[0] > 20 and expected[1] > 7, expected
            wait_for(
                lambda: _otlp_signals(otlp) == expected,
                timeout=20,
                message=lambda: f"{expected} in {otlp}, have {_otlp_signals(otlp)}",
            )
        finally:
            collector.stop()
    assert sink.errors() == []

    ours, theirs = _report(direct), _report(otlp)
    assert theirs["unparsable_lines"] == 0
    assert theirs == ours
    assert ours["events"] and ours["records"] == sum(expected)
    assert sum(event["cost"] for event in ours["events"]) > 0
