"""doctor warns when the sampler makes outcomes undercount tokens and cost, and names the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli_doctor import BIN, _env, _run


@pytest.mark.parametrize(
    ("sampler", "argument", "level"),
    [
        ("parentbased_traceidratio", "0.1", "warn"),
        ("traceidratio", "0.5", "warn"),
        ("runctx_ratio", "0.01", "ok"),
        ("parentbased_always_on", "", "ok"),
    ],
)
def test_doctor_says_whether_the_sampler_undercounts(
    sampler: str, argument: str, level: str, tmp_path: Path
) -> None:
    done = _run(
        [str(BIN / "opentelemetry-instrument"), str(BIN / "otel-runctx"), "doctor", "--json"],
        _env(
            OTEL_TRACES_EXPORTER="runctx_jsonl",
            OTEL_LOGS_EXPORTER="runctx_jsonl",
            OTEL_RUNCTX_JSONL_PATH=str(tmp_path / "x.jsonl"),
            OTEL_TRACES_SAMPLER=sampler,
            OTEL_TRACES_SAMPLER_ARG=argument,
        ),
    )
    report = json.loads(done.stdout)
    (finding,) = [f for f in report["findings"] if f["check"] == "sampler"]
    assert finding["level"] == level, finding
    if level == "warn":
        assert "undercounted" in finding["detail"]
        assert "OTEL_TRACES_SAMPLER=runctx_ratio" in finding["fix"]
