"""The cost e2e Celery app: ``summarize`` runs a child run of the enqueuing run (LLM calls)."""

from __future__ import annotations

import os
from typing import Any

import cost_common
from celery import Celery

from otel_runctx import get_run_context, run

app = Celery("e2e_cost", broker=os.environ["E2E_REDIS_URL"], backend=os.environ["E2E_REDIS_URL"])
app.conf.update(broker_connection_retry_on_startup=True, task_serializer="json")


@app.task(name="cost_tasks.summarize")
def summarize(calls: list[dict[str, Any]]) -> str | None:
    with run("summarize") as ctx:
        for spec in calls:
            cost_common.call(spec)
        assert get_run_context() is ctx
        return ctx.run_id
