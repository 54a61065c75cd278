"""Celery tasks that fail, retry and then succeed, as retry runs (RetryRunTask).

``E2E_REDIS_URL`` names the broker and result backend; ``E2E_ATTEMPTS_FILE`` is where each
execution appends the run it executed under, one JSON line. Enqueue (under
``opentelemetry-instrument``): ``celery_retries.py ORDER``: starts a run, sends both tasks,
waits for them and prints the sender's run as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

from celery import Celery

from otel_runctx import require_run_context, run, workflow
from otel_runctx.integrations.celery import RetryRunTask

app = Celery("e2e_retries", broker=os.environ["E2E_REDIS_URL"], backend=os.environ["E2E_REDIS_URL"])
app.conf.update(broker_connection_retry_on_startup=True, task_serializer="json")


def _note(how: str) -> None:
    ctx = require_run_context()
    fields = ("run_id", "attempt", "retry_of_run_id", "parent_run_id", "root_run_id", "event_id")
    line = {"how": how, **{name: getattr(ctx, name) for name in fields}}
    with open(os.environ["E2E_ATTEMPTS_FILE"], "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")


@app.task(name="celery_retries.bound", bind=True, base=RetryRunTask, max_retries=3)
@workflow("charge-bound", event_id=lambda self, order: order, customer_id="cust-celery")
def bound(self: RetryRunTask, order: str) -> str:
    _note("self.retry")
    if self.request.retries < 2:
        raise self.retry(exc=ConnectionError("provider down"), countdown=0)
    return "charged"


@app.task(
    name="celery_retries.auto",
    base=RetryRunTask,
    autoretry_for=(ConnectionError,),
    retry_kwargs={"countdown": 0, "max_retries": 3},
)
@workflow("charge-auto", event_id=lambda order: order, customer_id="cust-celery")
def auto(order: str) -> str:
    _note("autoretry_for")
    if require_run_context().attempt < 3:
        raise ConnectionError("provider down")
    return "charged"


if __name__ == "__main__":
    with run("billing", event_id=sys.argv[1], customer_id="cust-celery") as ctx:
        results = [bound.delay(sys.argv[1]), auto.delay(sys.argv[1])]
        done = [result.get(timeout=30) for result in results]
    print(json.dumps({"run_id": ctx.run_id, "results": done}), flush=True)
