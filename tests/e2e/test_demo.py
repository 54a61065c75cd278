"""make demo's pipeline, run for real, reports what really happened.

``examples/run_demo.py`` runs the support-ticket pipeline under the real
``opentelemetry-instrument`` with the runctx_jsonl exporters, then prints the report. The
pipeline keeps its own books (runs, child runs, failures, tokens per customer) independent of
telemetry; the report built from the telemetry must agree with them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .harness import REPO_ROOT, AppRunner, Collector, Sink, fast_export_env, python

FAILED_STATUSES = {"error", "failure", "timeout"}


def test_demo_report_matches_the_pipelines_own_books(apps: AppRunner, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    demo = apps.run(
        python(REPO_ROOT / "examples" / "run_demo.py", "--out", str(out)),
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": None},
        cwd=tmp_path,
        timeout=120,
    )
    printed = demo.output()
    for expected in ("[6/6]", "Per customer", "Per workflow", "Top events", "Runs (", "acme"):
        assert expected in printed, expected
    assert (out / "report.html").exists()

    truth = json.loads((out / "ground-truth.json").read_text())["customers"]
    done = subprocess.run(
        [sys.executable, "-m", "otel_runctx", "report", str(out / "telemetry.jsonl"), "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    report: dict[str, Any] = json.loads(done.stdout)
    rows = {row["customer_id"]: row for row in report["customers"]}

    assert set(rows) == set(truth) == {"acme", "globex", "initech"}
    for customer, books in truth.items():
        row = rows[customer]
        assert row["runs"] == books["runs"], customer
        assert row["child_runs"] == books["child_runs"], customer
        assert row["tokens"] == books["tokens"], customer
        failed = sum(n for status, n in row["outcomes"].items() if status in FAILED_STATUSES)
        assert failed == books["failed_runs"], (customer, row["outcomes"])
        # examples/prices.json: fake-llm-small costs 3.0 / 15.0 per 1M input / output tokens.
        expected = (books["input_tokens"] * 3.0 + books["output_tokens"] * 15.0) / 1e6
        assert row["cost"] == pytest.approx(expected, rel=1e-6), customer
    assert report["spans_outside_runs"] == 0
    assert report["unparsable_lines"] == 0

    retried = [r for r in report["runs"] if r["attempt"] == 2]
    assert len(retried) == 1 and retried[0]["customer_id"] == "acme"
    llm_spans = [
        json.loads(line)
        for line in (out / "telemetry.jsonl").read_text().splitlines()
        if '"gen_ai.request.model"' in line
    ]
    assert llm_spans and all("runctx.run_id" in s["attributes"] for s in llm_spans)
    lookups = [
        json.loads(line)
        for line in (out / "telemetry.jsonl").read_text().splitlines()
        if '"name":"lookup ' in line
    ]
    # Thread-pool work carries the run it was submitted from.
    assert lookups and all("runctx.run_id" in s["attributes"] for s in lookups)


def test_with_an_otlp_endpoint_the_demo_exports_to_the_collector(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    out = tmp_path / "demo"
    demo = apps.run(
        python(REPO_ROOT / "examples" / "run_demo.py", "--out", str(out)),
        env={**collector.otlp_env("grpc"), **fast_export_env()},
        cwd=tmp_path,
        timeout=120,
    )
    assert "no local report" in demo.output()
    assert not (out / "telemetry.jsonl").exists()
    runs = sink.wait_for_spans(name="run handle-ticket", count=7)
    assert {s["attributes"]["runctx.customer_id"] for s in runs} == {"acme", "globex", "initech"}
    llm = sink.wait_for_spans(lambda s: "gen_ai.request.model" in s["attributes"], count=16)
    assert all("runctx.run_id" in s["attributes"] for s in llm)


def test_make_demo_runs_green_in_a_fresh_copy_of_the_repository(tmp_path: Path) -> None:
    """The README's first command, run in a copy holding only the files git tracks."""
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    copy = tmp_path / "clone"
    for name in filter(None, tracked):
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, target)
    # Reuse this venv instead of building a new one (the CI run builds one from scratch for
    # `make test` already). A fresh stamp outside it keeps make from re-running the editable
    # install, which would repoint this venv at the temporary copy.
    stamp = tmp_path / "installed-stamp"
    stamp.touch()
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["make", "--no-print-directory", "demo", f"VENV={venv}", f"STAMP={stamp}"],
        cwd=copy, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed[-3000:]
    for expected in ("[6/6]", "Per customer", "acme", "globex", "initech"):
        assert expected in printed, (expected, printed[-3000:])
    assert "0 spans outside any run; 0 unparsable lines" in printed, printed[-3000:]
    assert (copy / "demo-output" / "telemetry.jsonl").stat().st_size > 0
    # It ends by saying where the page is, and the page is there.
    page = copy / "demo-output" / "report.html"
    assert done.stdout.rstrip().splitlines()[-1].startswith(f"demo: the report as a page: {page}")
    assert page.read_text().count('data-chart="cost"') == 3
