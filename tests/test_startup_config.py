"""Bad ``OTEL_RUNCTX_*`` configuration stops the process at startup (issue 12).

Through the real ``opentelemetry-instrument``: exit status 78 (EX_CONFIG), one message naming
the variable, the problem and the accepted values, and the app's code never ran. In code,
``configure()`` raises ConfigError. Unknown names get a warning with the closest known one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_runctx import configure
from otel_runctx.settings import ConfigError, reload_settings, unknown_runctx_variables

BIN = Path(sys.executable).parent
APP = "open('ran.txt', 'w').write('the app ran')\nprint('APP RAN')\n"


def _run_instrumented(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(APP)
    child = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    child.update(
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_RUNCTX_OUTCOME_SPOOL="off",
    )
    child.update(env)
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, "app.py"],
        cwd=tmp_path,
        env=child,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"OTEL_RUNCTX_PROPAGATION_MODE": "bogus"},
            "OTEL_RUNCTX_PROPAGATION_MODE='bogus' is not valid; allowed values: lean, full",
        ),
        ({"OTEL_RUNCTX_INBOUND": "verify"}, "OTEL_RUNCTX_INBOUND=verify needs at least one key"),
        (
            {"OTEL_RUNCTX_OUTCOME_METRICS_CUSTOMER": "maybe"},
            "OTEL_RUNCTX_OUTCOME_METRICS_CUSTOMER='maybe' is not valid; "
            "allowed values: true, false",
        ),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=" + "x" * 300},
            "cannot be a run's environment: environment is 300 characters long",
        ),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=pr%07od"},
            "environment must not contain control characters",
        ),
        (
            {"OTEL_RUNCTX_SIGNATURE_MAX_AGE": "-3"},
            "OTEL_RUNCTX_SIGNATURE_MAX_AGE='-3' is not valid; accepted values: a positive integer",
        ),
    ],
)
def test_bad_config_stops_opentelemetry_instrument_before_the_app(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    done = _run_instrumented(tmp_path, **env)
    assert done.returncode == 78, done.stderr
    assert expected in done.stderr
    assert "the application was not started" in done.stderr
    assert done.stderr.count("otel-runctx: invalid configuration") == 1
    assert "Traceback" not in done.stderr
    assert "APP RAN" not in done.stdout
    assert not (tmp_path / "ran.txt").exists()


def test_good_config_runs_the_app(tmp_path: Path) -> None:
    done = _run_instrumented(tmp_path, OTEL_RUNCTX_PROPAGATION_MODE="full")
    assert done.returncode == 0, done.stderr
    assert "APP RAN" in done.stdout


def test_an_unknown_name_is_a_warning_with_the_closest_known_name(tmp_path: Path) -> None:
    done = _run_instrumented(tmp_path, OTEL_RUNCTX_JSONL_PAHT="x.jsonl")
    assert done.returncode == 0, done.stderr
    assert "APP RAN" in done.stdout
    assert "OTEL_RUNCTX_JSONL_PAHT is not a setting otel-runctx knows" in done.stderr
    assert "did you mean OTEL_RUNCTX_JSONL_PATH?" in done.stderr


def test_unknown_runctx_variables_names_the_closest_known_one() -> None:
    found = unknown_runctx_variables(
        {
            "OTEL_RUNCTX_JSONL_PAHT": "x",
            "OTEL_RUNCTX_STRICT": "true",
            "OTEL_RUNCTX_ZZZZZZZZZZZZZZZZZZ": "1",
            "OTEL_SERVICE_NAME": "svc",
        }
    )
    assert found == [
        ("OTEL_RUNCTX_JSONL_PAHT", "OTEL_RUNCTX_JSONL_PATH"),
        ("OTEL_RUNCTX_ZZZZZZZZZZZZZZZZZZ", None),
    ]


def test_configure_raises_config_error_and_its_result_is_true(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_RUNCTX_PROPAGATION_MODE", "bogus")
    try:
        with pytest.raises(ConfigError, match="OTEL_RUNCTX_PROPAGATION_MODE"):
            configure(create_missing=False)
        monkeypatch.delenv("OTEL_RUNCTX_PROPAGATION_MODE")
        result = configure(create_missing=False, propagator=False)
        assert result
        assert bool(result) is True
    finally:
        reload_settings()
        from otel_runctx.distro.shutdown import uninstall_shutdown_flush

        uninstall_shutdown_flush()
