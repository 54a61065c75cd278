"""Process pools (fork and spawn) and subprocesses carry the run and lose nothing (issue 12).

Under the real ``opentelemetry-instrument`` (with the ``runctx_executors`` instrumentor it
loads) and a real collector, with 60 s batch delays so nothing is exported by luck: every pool
job runs in a child run of the submitter's run, and its span and outcome arrive although the
pool's workers leave through ``os._exit``. A subprocess started inside a run gets the run in its
own environment only, and takes it as its inbound run, under the inbound trust rules.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .harness import AppRunner, Collector, Sink, instrumented

APP = Path(__file__).parent / "apps" / "pool_app.py"
JOBS = 6


def _env(collector: Collector, **extra: str) -> dict[str, str]:
    return {
        **collector.otlp_env("grpc"),
        "OTEL_SERVICE_NAME": "pool-e2e",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_RUNCTX_OUTCOME_SPOOL": "off",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_BLRP_SCHEDULE_DELAY": "60000",
        **extra,
    }


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pool_jobs_run_in_child_runs_and_export_before_the_worker_vanishes(
    method: str, sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    app = apps.run(
        instrumented(APP, "pools", method), env=_env(collector), cwd=tmp_path, timeout=120
    )
    done = json.loads(app.output().strip().splitlines()[-1])
    jobs = done["jobs"]
    assert len(jobs) == JOBS
    assert {j["parent_run_id"] for j in jobs} == {done["run_id"]}, jobs
    assert len({j["run_id"] for j in jobs}) == JOBS  # one child run per job
    assert all(j["pid"] != done["pid"] for j in jobs)
    assert {j["workflow"] for j in jobs} == {"job"}
    spans = sink.wait_for_spans(lambda s: s["name"].startswith("job-"), count=JOBS, timeout=30)
    by_index = {s["name"]: s for s in spans}
    for record in jobs:
        span = by_index[f"job-{record['index']}"]
        assert span["attributes"]["runctx.run_id"] == record["run_id"]
        assert span["attributes"]["runctx.customer_id"] == "cust-pool"
    submit = sink.wait_for_span("run submit")
    roots = sink.wait_for_spans(name="run job", count=JOBS, timeout=30)
    assert {r["trace_id"] for r in roots} == {submit["trace_id"]}  # the same trace
    # Root spans carry every run field (other spans the lean set): the parent is the submitter.
    assert {r["attributes"]["runctx.parent_run_id"] for r in roots} == {done["run_id"]}
    outcomes = sink.wait_for_logs(event_name="runctx.outcome", count=JOBS + 1, timeout=30)
    child_outcomes = {r["attributes"]["runctx.run_id"] for r in outcomes} - {done["run_id"]}
    assert child_outcomes == {j["run_id"] for j in jobs}


@pytest.mark.parametrize(("inbound", "adopted"), [("trust", True), ("ignore", False)])
def test_a_subprocess_takes_the_run_from_its_own_environment(
    inbound: str, adopted: bool, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    env = _env(collector, OTEL_RUNCTX_INBOUND=inbound)
    app = apps.run(instrumented(APP, "subprocess"), env=env, cwd=tmp_path, timeout=120)
    done = json.loads(app.output().strip().splitlines()[-1])
    assert done["leaked"] == [], "the run was put into the parent's os.environ"
    assert done["child"] is not None, done["stderr"]
    if adopted:
        assert done["child"]["inbound"] == done["run_id"]
        assert done["child"]["nested"]["parent_run_id"] == done["run_id"]
    else:
        assert done["child"]["inbound"] is None
