"""Celery tasks for the SIGTERM test: each task is one run with spans, a log and an outcome.

Worker: ``celery -A celery_shutdown worker --pool prefork``. Sender: ``celery_shutdown.py N``
sends N tasks, waits for every result and prints ``{"served": N}``.
"""

from __future__ import annotations

import json
import os
import sys

from celery import Celery
from shutdown_app import work

BROKER = os.environ["E2E_REDIS_URL"]
app = Celery("e2e_shutdown", broker=BROKER, backend=BROKER)
app.conf.update(broker_connection_retry_on_startup=True, task_serializer="json")


@app.task(name="celery_shutdown.serve")
def serve(index: int) -> str:
    return work(f"i={index}").decode()


if __name__ == "__main__":
    results = [serve.delay(i) for i in range(int(sys.argv[1]))]
    served = [r.get(timeout=30) for r in results]
    print(json.dumps({"served": len(served)}), flush=True)
