"""A Celery app on a real Redis broker, for the worker and for the script that enqueues.

``E2E_REDIS_URL`` names the broker (and result backend). The task ``record`` opens a span and
returns the run it executes under, so the enqueuing side can compare it with its own.

Enqueue (under ``opentelemetry-instrument``): ``celery_tasks.py LABEL``: starts a run, sends the
task, waits for its result and prints both runs as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from celery import Celery
from opentelemetry import trace

from otel_runctx import get_run_context, run

app = Celery("e2e_celery", broker=os.environ["E2E_REDIS_URL"], backend=os.environ["E2E_REDIS_URL"])
app.conf.update(broker_connection_retry_on_startup=True, task_serializer="json")
tracer = trace.get_tracer("e2e.celery_tasks")


@app.task(name="celery_tasks.record")
def record(label: str) -> dict[str, Any] | None:
    with tracer.start_as_current_span("task.body", attributes={"test.label": label}):
        current = get_run_context()
        if current is None:
            return None
        return {"run_id": current.run_id, "customer_id": current.customer_id}


def enqueue(label: str) -> None:
    with run("billing", event_id=f"evt-{label}", customer_id="cust-celery") as ctx:
        result = record.delay(label)
        seen = result.get(timeout=20)
    print(json.dumps({"run_id": ctx.run_id, "worker_saw": seen}), flush=True)


if __name__ == "__main__":
    enqueue(sys.argv[1])
