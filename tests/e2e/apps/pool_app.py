"""Process pools and a subprocess inside a run, for tests/e2e/test_process_pools.py.

``pool_app.py pools METHOD``: ProcessPoolExecutor and multiprocessing.Pool jobs (start method
METHOD) submitted inside one run; prints what the jobs saw. ``pool_app.py subprocess``: starts
``pool_app.py child`` with subprocess.run inside a run; the child prints the run it runs under.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from opentelemetry import trace

from otel_runctx import get_run_context, run

tracer = trace.get_tracer("e2e.pool_app")


def job(index: int) -> dict[str, Any]:
    with tracer.start_as_current_span(f"job-{index}"):
        current = get_run_context()
        assert current is not None, "the job runs without a run"
        return {
            "index": index,
            "pid": os.getpid(),
            "run_id": current.run_id,
            "parent_run_id": current.parent_run_id,
            "workflow": current.workflow,
        }


def pools(method: str) -> None:
    context = multiprocessing.get_context(method)
    with run("submit", event_id="evt-pool", customer_id="cust-pool") as ctx:
        with ProcessPoolExecutor(2, mp_context=context) as executor:
            seen = list(executor.map(job, range(3)))
        with context.Pool(2) as pool:
            seen += pool.map(job, range(3, 5))
            seen.append(pool.apply(job, (5,)))
    print(json.dumps({"run_id": ctx.run_id, "pid": os.getpid(), "jobs": seen}), flush=True)


def parent() -> None:
    with run("parent", event_id="evt-sub", customer_id="cust-sub") as ctx:
        done = subprocess.run(
            [sys.executable, __file__, "child"], capture_output=True, text=True, timeout=120
        )
    leaked = [name for name in ("TRACEPARENT", "BAGGAGE") if name in os.environ]
    child = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else None
    print(json.dumps({"run_id": ctx.run_id, "child": child, "leaked": leaked,
                      "stderr": done.stderr[-2000:]}), flush=True)  # fmt: skip


def child() -> None:
    inbound = get_run_context()
    nested = None
    if inbound is not None:
        with run("in-child") as step:
            nested = {"run_id": step.run_id, "parent_run_id": step.parent_run_id}
    print(json.dumps({"inbound": inbound and inbound.run_id, "nested": nested}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "pools":
        pools(sys.argv[2])
    elif sys.argv[1] == "subprocess":
        parent()
    else:
        child()
