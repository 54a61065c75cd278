"""Service A of the cost e2e: for each planned job, one run that calls the fake OpenAI server,
service B over HTTP, and a Celery task on Redis; prints one JSON line per job.

Usage: cost_a.py PLAN_JSON B_URL
"""

from __future__ import annotations

import json
import sys

import cost_common
import requests
from cost_tasks import summarize

from otel_runctx import run


def main(plan_path: str, b_url: str) -> None:
    with open(plan_path) as plan_file:
        plan = json.load(plan_file)
    for job in plan:
        with run(
            "checkout",
            event_id=job["event_id"],
            customer_id=job["customer_id"],
            tenant_id=job["tenant_id"],
        ) as ctx:
            for spec in job["a"]:
                cost_common.call(spec)
            answer = requests.post(b_url, json=job["b"], timeout=30)
            answer.raise_for_status()
            worker_run = summarize.delay(job["worker"]).get(timeout=30)
        print(
            json.dumps(
                {"job": job["job"], "run_id": ctx.run_id, "b": answer.json(), "w": worker_run}
            ),
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
