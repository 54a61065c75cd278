"""Service A: starts a run, calls service B over HTTP with ``requests``, prints what happened.

Run under ``opentelemetry-instrument``; the requests instrumentation injects the headers.
Prints one JSON line: the run's ids and B's answer.

Usage: service_a.py B_URL LABEL
"""

from __future__ import annotations

import json
import sys

import requests
from opentelemetry import baggage, context

from otel_runctx import run


def main(url: str, label: str) -> None:
    token = context.attach(baggage.set_baggage("app.origin", "service a/1+1"))
    try:
        with run(
            "checkout", event_id=f"evt-{label}", customer_id="cust-a", tenant_id="tenant-a"
        ) as ctx:
            answer = requests.get(url, params={"label": label}, timeout=10)
            answer.raise_for_status()
            print(
                json.dumps(
                    {
                        "run_id": ctx.run_id,
                        "event_id": ctx.event_id,
                        "customer_id": ctx.customer_id,
                        "tenant_id": ctx.tenant_id,
                        "b": answer.json(),
                    }
                ),
                flush=True,
            )
    finally:
        context.detach(token)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
