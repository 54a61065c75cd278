"""The first hour, under the real ``opentelemetry-instrument``: the local recipe, the logging
default, and ``otel-runctx doctor`` telling the truth.

* ``OTEL_RUNCTX_LOCAL=true`` alone sends spans, log records and metrics to the file: no OTLP
  error, no ``UNAVAILABLE`` retries stalling the exit.
* stdlib ``logging`` records are exported with ``runctx.*``, once, through whichever handler
  applies (opentelemetry-instrumentation-logging's, or the SDK's that the distro switches on),
  and not at all when the user turns logging auto-instrumentation off.
* ``doctor`` finds a closed collector port, an installed instrumentation that fails to import
  (a broken package this test writes; ``opentelemetry-instrument`` itself says nothing), logs
  not exported, outcomes stuck in the spool, and a misspelt ``OTEL_RUNCTX_*`` name; exits 1,
  prints valid ``--json``, and stays quiet when its reader closes the pipe.
"""

from __future__ import annotations

import json
import socket
import subprocess
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from .harness import (
    AppRunner,
    Collector,
    RedisServer,
    child_env,
    fast_export_env,
    instrumented,
    opentelemetry_instrument,
    wait_for,
)

APP = textwrap.dedent(
    """
    import logging
    from otel_runctx import run

    logging.basicConfig(level=logging.INFO)
    with run("first-hour", event_id="E-1", customer_id="acme") as ctx:
        logging.getLogger("app").info("inside the run")
    print("run_id", ctx.run_id, flush=True)
    """
)

BROKEN_INSTRUMENTOR = textwrap.dedent(
    """
    # Like an instrumentation whose opentelemetry-util-* dependency is the wrong version.
    from opentelemetry.util.runctx_test_missing import helper  # ModuleNotFoundError

    class BrokenInstrumentor:
        pass
    """
)

APPS = Path(__file__).resolve().parent / "apps"
OTEL_RUNCTX = str(opentelemetry_instrument().parent / "otel-runctx")
ERRORS = ("UNAVAILABLE", "Failed to export", "Traceback", "Exception while exporting")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that is bound but never listens: connections are refused."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        yield holder.getsockname()[1]


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_local_mode_writes_all_three_signals_and_prints_no_error(
    apps: AppRunner, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(APP)
    out = tmp_path / "local.jsonl"
    app = apps.run(
        instrumented(tmp_path / "app.py"),
        env={"OTEL_RUNCTX_LOCAL": "true", "OTEL_RUNCTX_JSONL_PATH": str(out)},
        cwd=tmp_path,
    )
    printed = app.output()
    assert not [e for e in ERRORS if e in printed], printed
    run_id = printed.split("run_id ")[1].split()[0]
    records = read_jsonl(out)
    assert {r["signal"] for r in records} == {"span", "log", "metric"}
    logs = [r for r in records if r["signal"] == "log" and r["body"] == "inside the run"]
    assert len(logs) == 1, "stdlib logging exported exactly once"
    assert logs[0]["attributes"]["runctx.run_id"] == run_id  # type: ignore[index]
    assert any(r.get("name") == "runctx.runs" for r in records if r["signal"] == "metric")


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="instrumentation-logging-handler"),
        pytest.param({"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging"}, id="sdk-handler"),
    ],
)
def test_stdlib_logging_is_exported_once_with_the_run_by_default(
    apps: AppRunner, tmp_path: Path, env: Mapping[str, str]
) -> None:
    (tmp_path / "app.py").write_text(APP)
    out = tmp_path / "logs.jsonl"
    base = {"OTEL_RUNCTX_LOCAL": "true", "OTEL_RUNCTX_JSONL_PATH": str(out)}
    apps.run(instrumented(tmp_path / "app.py"), env={**base, **env}, cwd=tmp_path)
    logs = [r for r in read_jsonl(out) if r["signal"] == "log" and r["body"] == "inside the run"]
    assert len(logs) == 1
    assert logs[0]["attributes"]["runctx.customer_id"] == "acme"  # type: ignore[index]


LOGGING_OFF = {
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": "false",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "logging",
}


def test_logging_auto_instrumentation_off_exports_no_logging_record(
    apps: AppRunner, tmp_path: Path
) -> None:
    (tmp_path / "app.py").write_text(APP)
    out = tmp_path / "off.jsonl"
    env = {"OTEL_RUNCTX_LOCAL": "true", "OTEL_RUNCTX_JSONL_PATH": str(out), **LOGGING_OFF}
    apps.run(instrumented(tmp_path / "app.py"), env=env, cwd=tmp_path)
    bodies = [r["body"] for r in read_jsonl(out) if r["signal"] == "log"]
    assert "inside the run" not in bodies
    assert any(str(b).startswith("run first-hour ended") for b in bodies)  # outcomes still go


def doctor(
    apps: AppRunner, env: Mapping[str, str], *args: str, name: str = "doctor"
) -> tuple[int, str]:
    argv = [str(opentelemetry_instrument()), OTEL_RUNCTX, "doctor", *args]
    app = apps.run(argv, env={**fast_export_env(), **env}, name=name, check=False, timeout=60)
    assert app.returncode is not None
    return app.returncode, app.output()


def finding(output: str, level: str, check: str) -> str:
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.strip().startswith(f"{level} ") and f" {check}:" in line:
            fix = lines[index + 1].strip() if index + 1 < len(lines) else ""
            return line + "\n" + (fix if fix.startswith("fix:") else "")
    raise AssertionError(f"no {level} {check!r} finding in:\n{output}")


def test_doctor_is_all_good_against_a_live_collector(
    apps: AppRunner, collector: Collector, tmp_path: Path
) -> None:
    env = {**collector.otlp_env(), "OTEL_RUNCTX_OUTCOME_SPOOL": str(tmp_path / "spool.db")}
    status, output = doctor(apps, env)
    assert status == 0, output
    assert "connected" in finding(output, "ok", "endpoints")
    assert "logging" in finding(output, "ok", "instrumentations")
    assert "exported with runctx.*" in finding(output, "ok", "stdlib logging")
    assert output.rstrip().endswith("All good.")


def test_doctor_finds_a_closed_port_a_broken_instrumentation_logging_off_and_a_typo(
    apps: AppRunner, tmp_path: Path, closed_port: int
) -> None:
    site = tmp_path / "site"
    (site / "broken_instr").mkdir(parents=True)
    (site / "broken_instr" / "__init__.py").write_text(BROKEN_INSTRUMENTOR)
    dist_info = site / "broken_instr-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-instr\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(
        "[opentelemetry_instrumentor]\nbroken = broken_instr:BrokenInstrumentor\n"
    )
    env = {
        "PYTHONPATH": str(site),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}",
        "OTEL_RUNCTX_LOCL": "true",
        "OTEL_RUNCTX_OUTCOME_SPOOL": str(tmp_path / "spool.db"),
        **LOGGING_OFF,
    }
    # opentelemetry-instrument itself runs the app without a word about the broken package.
    (tmp_path / "quiet.py").write_text("print('app ran')\n")
    quiet = apps.run(
        instrumented(tmp_path / "quiet.py"),
        env={**env, "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
             "OTEL_LOGS_EXPORTER": "none"},
        name="quiet",
    )  # fmt: skip
    assert "broken" not in quiet.output().lower(), quiet.output()

    status, output = doctor(apps, env)
    assert status == 1, output
    endpoint = finding(output, "PROBLEM", "endpoints")
    assert f"127.0.0.1:{closed_port}" in endpoint and "fix: " in endpoint, endpoint
    broken = finding(output, "PROBLEM", "instrumentations")
    assert "broken (broken-instr 1.0) fails to load: ModuleNotFoundError" in broken, broken
    assert "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=broken" in broken
    assert "not exported" in finding(output, "WARN", "stdlib logging")
    assert "did you mean OTEL_RUNCTX_LOCAL?" in finding(output, "PROBLEM", "unknown variable")

    status, as_json = doctor(apps, env, "--json", name="doctor-json")
    report = json.loads(as_json[as_json.index("{") :])
    assert status == 1 and report["ok"] is False
    checks = {f["check"] for f in report["findings"] if f["level"] == "problem"}
    assert {"endpoints", "instrumentations", "unknown variable"} <= checks
    assert all(f["fix"] for f in report["findings"] if f["level"] == "problem")


def test_doctor_reports_outcomes_waiting_in_the_spool(
    apps: AppRunner, tmp_path: Path, closed_port: int
) -> None:
    spool = tmp_path / "spool.db"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}",
        "OTEL_RUNCTX_OUTCOME_SPOOL": str(spool),
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
    }
    (tmp_path / "app.py").write_text(APP)
    apps.run(
        instrumented(tmp_path / "app.py"),
        env={**env, "OTEL_LOGS_EXPORTER": "runctx_outcome"},
        name="spooling-app",
    )
    status, output = doctor(apps, {**env, "OTEL_LOGS_EXPORTER": "none"})
    backlog = finding(output, "WARN", "spool backlog")
    assert "1 outcome(s) waiting" in backlog and " since 20" in backlog, backlog
    assert "fix: " in backlog
    assert status == 0, output  # waiting a few seconds is a warning; stuck for long, a problem


def test_doctor_piped_into_a_reader_that_closes_early_prints_no_traceback(
    tmp_path: Path, closed_port: int
) -> None:
    env = child_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}"})
    argv = [str(opentelemetry_instrument()), OTEL_RUNCTX, "doctor"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written
    try:
        errors = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1  # the findings still decide the exit status
    finally:
        proc.kill()
        proc.stderr.close()
    assert "Traceback" not in errors and "BrokenPipeError" not in errors, errors
    shell = subprocess.run(
        " ".join(argv) + " | head -n 1", shell=True, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert shell.stdout == "otel-runctx doctor\n"
    assert "Traceback" not in shell.stderr, shell.stderr


def test_the_demo_does_not_claim_a_collector_it_could_not_reach(
    tmp_path: Path, closed_port: int
) -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "run_demo.py"
    env = child_env({"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port}"})
    done = subprocess.run(
        [str(opentelemetry_instrument().parent / "python"), str(demo), "--out",
         str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "went to your collector" not in done.stdout
    assert f"cannot connect to your collector: http://127.0.0.1:{closed_port}" in done.stdout


def test_celery_retries_are_retry_runs_with_one_outcome_each(
    apps: AppRunner, tmp_path: Path, redis_server: RedisServer
) -> None:
    attempts, worker_file = tmp_path / "attempts.jsonl", tmp_path / "worker.jsonl"
    env = {
        **fast_export_env(),
        "E2E_REDIS_URL": redis_server.url,
        "E2E_ATTEMPTS_FILE": str(attempts),
        "OTEL_RUNCTX_LOCAL": "true",
        "OTEL_PROPAGATORS": "tracecontext,runctx",
    }
    worker = apps.start(
        instrumented("-m", "celery", "-A", "celery_retries", "worker", "--pool=solo", "-l", "INFO"),
        env={**env, "OTEL_RUNCTX_JSONL_PATH": str(worker_file)},
        cwd=APPS,
        name="celery_worker",
    )
    worker.wait_for_output("ready.", timeout=60)
    producer = apps.run(
        instrumented(APPS / "celery_retries.py", "order-7"),
        env={**env, "OTEL_RUNCTX_JSONL_PATH": str(tmp_path / "producer.jsonl")},
        cwd=APPS,
        name="celery_producer",
        timeout=90,
    )
    sent = json.loads(producer.output().strip().splitlines()[-1])
    assert sent["results"] == ["charged", "charged"]
    seen = [json.loads(line) for line in attempts.read_text().splitlines()]
    for how in ("self.retry", "autoretry_for"):
        runs = [r for r in seen if r["how"] == how]
        assert [r["attempt"] for r in runs] == [1, 2, 3], (how, seen)
        assert [r["retry_of_run_id"] for r in runs] == [None, runs[0]["run_id"], runs[1]["run_id"]]
        assert {r["parent_run_id"] for r in runs} == {sent["run_id"]}, how
        assert {r["root_run_id"] for r in runs} == {sent["run_id"]}, how
        assert {r["event_id"] for r in runs} == {"order-7"}
    run_ids = {r["run_id"] for r in seen}

    def outcomes() -> dict[str, str]:
        if not worker_file.exists():
            return {}
        found = {}
        for record in read_jsonl(worker_file):
            attributes = record.get("attributes") or {}
            if record["signal"] == "log" and "runctx.outcome.status" in attributes:  # type: ignore[operator]
                found[attributes["runctx.run_id"]] = attributes["runctx.outcome.status"]  # type: ignore[index]
        return found

    wait_for(lambda: run_ids <= set(outcomes()), timeout=30, message="one outcome per attempt")
    statuses = outcomes()
    for how in ("self.retry", "autoretry_for"):
        runs = [r for r in seen if r["how"] == how]
        assert [statuses[r["run_id"]] for r in runs] == ["failure", "failure", "success"], how
