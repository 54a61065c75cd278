"""Local mode, the logging default, doctor's probes, __version__ and LICENSE (unit level).

The same behaviour under the real ``opentelemetry-instrument`` is in tests/e2e/test_first_hour.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from unittest.mock import ANY

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_runctx
from otel_runctx.cli.doctor import Diagnosis
from otel_runctx.cli.probes import (
    check_endpoints,
    check_instrumentations,
    check_unknown_variables,
    otlp_endpoints,
)
from otel_runctx.distro.defaults import local_defaults, logging_defaults
from otel_runctx.exporters.jsonl_metrics import JsonlMetricExporter, metrics_to_dicts
from otel_runctx.settings import ConfigError, unknown_runctx_variables

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_local_mode_defaults_all_three_exporters_to_the_file() -> None:
    assert local_defaults({"OTEL_RUNCTX_LOCAL": "true"}) == {
        "OTEL_TRACES_EXPORTER": "runctx_jsonl",
        "OTEL_METRICS_EXPORTER": "runctx_jsonl",
        "OTEL_LOGS_EXPORTER": "runctx_jsonl",
    }
    assert local_defaults({}) == {} == local_defaults({"OTEL_RUNCTX_LOCAL": "false"})
    with pytest.raises(ConfigError, match="OTEL_RUNCTX_LOCAL"):
        local_defaults({"OTEL_RUNCTX_LOCAL": "yes please"})


def test_logging_default_is_on_unless_chosen_or_the_instrumentation_adds_its_handler() -> None:
    on = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "true"}
    # opentelemetry-instrumentation-logging is a dev dependency: it adds its own handler.
    assert logging_defaults({}) == {}
    assert logging_defaults({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests,logging"}) == on
    assert logging_defaults({"OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION": "false"}) == on
    chose = {"OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "false"}
    assert logging_defaults({**chose, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging"}) == {}


def test_the_metric_exporter_writes_one_line_per_data_point(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    meter.create_counter("jobs").add(3, {"kind": "a"})
    meter.create_histogram("took", unit="s").record(0.5)
    data = reader.get_metrics_data()
    assert data is not None
    path = tmp_path / "out.jsonl"
    exporter = JsonlMetricExporter(str(path))
    assert exporter.export(data).name == "SUCCESS"
    exporter.shutdown()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert {(r["signal"], r["name"], r["kind"]) for r in lines} == {
        ("metric", "jobs", "Sum"),
        ("metric", "took", "Histogram"),
    }
    (jobs,) = [r for r in lines if r["name"] == "jobs"]
    assert (jobs["value"], jobs["attributes"]) == (3, {"kind": "a"})
    assert len(metrics_to_dicts(data)) == 2


def test_unknown_runctx_variables_name_the_closest_setting() -> None:
    env = {"OTEL_RUNCTX_LOCL": "1", "OTEL_RUNCTX_LOCAL": "true", "OTEL_RUNCTX_QQQQQQQQQQQQ": "x"}
    assert unknown_runctx_variables(env) == [
        ("OTEL_RUNCTX_LOCL", "OTEL_RUNCTX_LOCAL"),
        ("OTEL_RUNCTX_QQQQQQQQQQQQ", None),
    ]
    diagnosis = Diagnosis()
    check_unknown_variables(diagnosis, env)
    assert [f.fix for f in diagnosis.problems] == ["did you mean OTEL_RUNCTX_LOCAL?", ANY]


def test_otlp_endpoints_follow_the_sdk_rules() -> None:
    assert otlp_endpoints({}) == {"http://localhost:4317": ["traces", "metrics", "logs"]}
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "runctx_outcome",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x",
    }
    assert otlp_endpoints(env) == {
        "http://t:9/x": ["traces"],
        "http://c:4318/v1/logs": ["outcome spool"],
    }
    assert (
        otlp_endpoints(
            {f"OTEL_{s}_EXPORTER": "runctx_jsonl" for s in ("TRACES", "METRICS", "LOGS")}
        )
        == {}
    )


def test_endpoint_check_tells_open_from_closed_ports() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        open_port = listening.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_port = probe.getsockname()[1]  # bound, never listening: refuses
            diagnosis = Diagnosis()
            env = {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{open_port}",
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}",
            }
            check_endpoints(diagnosis, env)
    (ok,) = [f for f in diagnosis.findings if f.level == "ok"]
    assert ok.detail.startswith(f"traces -> http://127.0.0.1:{open_port}: connected")
    (problem,) = diagnosis.problems
    assert problem.detail.startswith(f"metrics, logs -> http://127.0.0.1:{closed_port}: cannot")
    assert problem.fix is not None and "OTEL_RUNCTX_LOCAL=true" in problem.fix


def test_instrumentation_check_passes_on_the_dev_environment() -> None:
    diagnosis = Diagnosis()
    check_instrumentations(diagnosis, {})
    assert diagnosis.problems == []
    assert "runctx_executors" in diagnosis.findings[0].detail


def test_version_comes_from_the_package_metadata() -> None:
    assert otel_runctx.__version__ == importlib.metadata.version("otel-runctx")


def test_license_is_apache_2_and_ships_in_the_wheel(tmp_path: Path) -> None:
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.strip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=REPO_ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("otel_runctx-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(license_name).decode() == text
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        assert "License-Expression: Apache-2.0" in archive.read(metadata).decode()


def test_outcomes_stuck_in_the_spool_for_long_are_a_problem(tmp_path: Path) -> None:
    from otel_runctx.cli.probes import check_spool_backlog
    from otel_runctx.outcomes.store import SpoolStore

    path = tmp_path / "spool.db"
    SpoolStore(path, 1 << 20).close()
    an_hour_ago = int((time.time() - 3600) * 1e9)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO outcomes (outcome_id, resource_id, payload) VALUES (?, ?, ?)",
            ("o-1", 1, json.dumps({"t": an_hour_ago}).encode()),
        )
    diagnosis = Diagnosis()
    check_spool_backlog(diagnosis, {"OTEL_RUNCTX_OUTCOME_SPOOL": str(path)})
    (problem,) = diagnosis.problems
    assert "1 outcome(s) waiting" in problem.detail
    assert re.search(r"\(36\d\d s ago\)", problem.detail), problem.detail
