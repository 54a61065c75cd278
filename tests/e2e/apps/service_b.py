"""Service B: a FastAPI app served by uvicorn, run under ``opentelemetry-instrument``.

It knows nothing about runs beyond reading the active one: the inbound run arrives through the
``runctx`` propagator. ``GET /work?label=X`` opens a span ``b.work`` (labelled, so a test can
find this request's trace) and answers with the run B sees and B's app baggage.

Usage: service_b.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from opentelemetry import baggage, trace

from otel_runctx import get_run_context

app = FastAPI()
tracer = trace.get_tracer("e2e.service_b")


@app.get("/work")
def work(label: str = "") -> dict[str, Any]:
    with tracer.start_as_current_span("b.work", attributes={"test.label": label}):
        run = get_run_context()
        return {
            "run": None
            if run is None
            else {
                "run_id": run.run_id,
                "event_id": run.event_id,
                "customer_id": run.customer_id,
                "tenant_id": run.tenant_id,
            },
            "baggage": {key: str(value) for key, value in baggage.get_all().items()},
        }


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
