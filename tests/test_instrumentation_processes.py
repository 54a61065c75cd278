"""Subprocess carriers and process-pool jobs, in process (the e2e tests start real ones)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

from opentelemetry import propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_runctx import get_run_context, run
from otel_runctx.instrumentation.processes import (
    ProcessJob,
    adopt_process_carrier,
    in_child_run,
    process_carrier_env,
)
from otel_runctx.propagation import RunContextPropagator

PRINT_ENV = "import json, os; print(json.dumps({k: os.environ.get(k) for k in ('BAGGAGE', 'X')}))"


def _with_run_propagator() -> object:
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), RunContextPropagator()])
    )
    return previous


def test_popen_inside_a_run_passes_the_run_in_the_childs_env_only(instrumented: None) -> None:
    previous = _with_run_propagator()
    try:
        with run("parent", event_id="e", customer_id="acme") as ctx:
            done = subprocess.run(
                [sys.executable, "-c", PRINT_ENV],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "X": "kept"},
            )
        seen = json.loads(done.stdout)
        assert f"runctx.run_id={ctx.run_id}" in seen["BAGGAGE"]
        assert seen["X"] == "kept"
        assert "BAGGAGE" not in os.environ and "TRACEPARENT" not in os.environ
        outside = subprocess.run(
            [sys.executable, "-c", PRINT_ENV], capture_output=True, text=True, timeout=60
        )
        assert json.loads(outside.stdout)["BAGGAGE"] is None
    finally:
        propagate.set_global_textmap(previous)  # type: ignore[arg-type]


def test_carrier_env_keeps_what_the_caller_set_and_is_none_outside_a_run() -> None:
    assert process_carrier_env({}) is None
    previous = _with_run_propagator()
    try:
        with run("p", event_id="e", customer_id="c"):
            env = process_carrier_env({"BAGGAGE": "mine=1"})
        assert env is not None and env["BAGGAGE"] == "mine=1" and "TRACEPARENT" in env
    finally:
        propagate.set_global_textmap(previous)  # type: ignore[arg-type]


def _double(value: int) -> tuple[int, str | None, str | None]:
    current = get_run_context()
    assert current is not None
    return value * 2, current.parent_run_id, current.workflow


def test_a_process_job_pickles_and_runs_in_a_child_run_of_the_submitter() -> None:
    with run("submit", event_id="e", customer_id="c") as ctx:
        job = in_child_run(_double)
    assert isinstance(job, ProcessJob)
    restored = pickle.loads(pickle.dumps(job))
    assert restored(21) == (42, ctx.run_id, "_double")
    assert get_run_context() is None
    assert in_child_run(_double) is _double  # outside a run: nothing to carry


def test_adopting_a_carrier_makes_its_run_the_inbound_run() -> None:
    previous = _with_run_propagator()
    try:
        with run("p", event_id="e", customer_id="c") as ctx:
            env = process_carrier_env({})
        assert env is not None
        import contextvars

        def adopt() -> str | None:
            assert adopt_process_carrier(env)
            current = get_run_context()
            return current.run_id if current else None

        assert contextvars.Context().run(adopt) == ctx.run_id
        assert not adopt_process_carrier({})
    finally:
        propagate.set_global_textmap(previous)  # type: ignore[arg-type]
