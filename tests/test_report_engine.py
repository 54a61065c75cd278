"""The DuckDB report agrees with the plain-Python reference and with the generator's own books.

The data (benchmarks/report_data.py) has retries, child runs in a second service, sampled events
(probability 0.25, all-or-nothing per event), unpriced models, lost and duplicated outcomes and
a span outside any run. The same records are read as runctx_jsonl, gzip, a glob and OTLP JSON.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import pytest

from benchmarks.report_data import Books, generate, write_jsonl
from benchmarks.report_otlp import to_otlp_lines
from otel_runctx.cli.report import Report, ReportError, build_report

from .report_reference import reference_report


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], Books]:
    records, books = generate(4000, seed=11, customers=7, spans_per_run=9)
    folder = tmp_path_factory.mktemp("report-data")
    path = folder / "telemetry.jsonl"
    write_jsonl(path, records)
    return path, records, books


def _subset(row: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in like}


def _approx(rows: list[dict[str, Any]]) -> list[Any]:
    return [
        {k: pytest.approx(v) if isinstance(v, float) else v for k, v in r.items()} for r in rows
    ]


def test_the_data_has_every_case_the_report_must_handle(data: Any) -> None:
    _, records, books = data
    report = build_report([str(data[0])])
    assert any(e["attempts"] == 2 for e in report.events)  # retries
    assert all(e["services"] == ["api", "worker"] for e in report.events if e["spans"])
    assert any(r["spans_estimated"] for r in report.runs)  # sampled
    assert any(e["spans"] == 0 and e["runs"] for e in report.events)  # sampled out entirely
    assert report.unpriced_models == ["fake-llm-unpriced"]
    assert any(r["outcome_events"] == 2 for r in report.runs)  # delivered twice
    assert any(r["status_source"] == "span" for r in report.runs)  # outcome lost
    assert report.spans_outside_runs == 1 and report.records == len(records) == books.records


def test_engine_equals_the_reference(data: Any) -> None:
    path, records, _ = data
    engine = build_report([str(path)])
    reference = reference_report(records)
    assert engine.records == reference["records"]
    assert engine.spans_outside_runs == reference["spans_outside_runs"]
    for key in ("runs", "events", "customers", "workflows"):
        assert len(getattr(engine, key)) == len(reference[key]), key
        pairs = zip(getattr(engine, key), reference[key], strict=True)
        ours = [_subset(row, like) for row, like in pairs]
        assert ours == _approx(reference[key]), key


def test_events_add_up_to_the_generators_books(data: Any) -> None:
    path, _, books = data
    report = build_report([str(path)])
    events = {e["event_id"]: e for e in report.events}
    assert set(events) == set(books.events)
    for event_id, truth in books.events.items():
        event = events[event_id]
        assert event["customer_id"] == truth.customer_id
        assert (event["runs"], event["attempts"]) == (truth.runs, truth.attempts)
        assert (event["input_tokens"], event["output_tokens"]) == (
            truth.input_tokens,
            truth.output_tokens,
        )
        assert event["cost"] == pytest.approx(truth.cost, abs=1e-6)
        assert event["status"] == truth.status
        # Sampled events: every span or none was kept, each kept one counts 1/0.25.
        assert event["spans"] in (truth.spans_emitted, 0, 4 * truth.spans_emitted)
        if event["spans"] != truth.spans_emitted:
            assert event["spans_estimated"]
    # A root run's inclusive cost is its own plus its child run's.
    by_id = {r["run_id"]: r for r in report.runs}
    for run in report.runs:
        if run["parent_run_id"]:
            parent = by_id[run["parent_run_id"]]
            assert parent["inclusive_cost"] == pytest.approx(
                (by_id[parent["run_id"]]["cost"]) + run["cost"], abs=2e-6
            )


def _comparable(report: Report) -> dict[str, Any]:
    document = report.as_dict()
    document.pop("files")
    return document


def test_the_same_records_as_otlp_json_gzip_and_a_glob_give_the_same_report(
    data: Any, tmp_path: Path
) -> None:
    path, records, _ = data
    direct = _comparable(build_report([str(path)]))

    otlp = tmp_path / "otlp" / "traces.json"
    otlp.parent.mkdir()
    otlp.write_text("".join(line + "\n" for line in to_otlp_lines(records)))
    assert _comparable(build_report([str(otlp)])) == direct

    part = tmp_path / "parts"
    part.mkdir()
    with path.open("rb") as source, gzip.open(part / "a.jsonl.gz", "wb") as target:
        shutil.copyfileobj(source, target)
    assert _comparable(build_report([str(part / "*.gz")])) == direct


def test_lines_that_are_not_records_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    records, _ = generate(50, seed=3, customers=1, spans_per_run=3)
    write_jsonl(path, records)
    with path.open("a") as handle:
        handle.write("not json\n[1, 2]\n\n")
        handle.write('{"signal": "metric", "name": "runctx.runs", "attributes": {}}\n')
    report = build_report([str(path)])
    assert report.unparsable_lines == 2
    assert report.records == len(records)


def test_a_broken_gzip_file_is_one_clear_error(tmp_path: Path) -> None:
    from otel_runctx.cli.command import main

    broken = tmp_path / "t.jsonl.gz"
    broken.write_bytes(gzip.compress(b'{"signal": "span"}\n' * 100)[:40])
    with pytest.raises(ReportError, match="cannot read"):
        build_report([str(broken)])
    assert main(["report", str(broken), "--json"]) == 2


def test_json_is_written_run_by_run_and_tables_keep_only_the_runs_they_show(data: Any) -> None:
    import io
    import json

    path, _, _ = data
    full = build_report([str(path)])
    out = io.StringIO()
    full.write_json(out)
    assert json.loads(out.getvalue()) == full.as_dict()
    assert full.run_count == len(full.runs) > 5

    few = build_report([str(path)], max_runs=5)
    assert few.runs == full.runs[:5] and few.run_count == full.run_count
    assert (few.spans_estimated, few.unpriced_models) == (True, ["fake-llm-unpriced"])
    assert few.events == full.events and few.customers == full.customers
