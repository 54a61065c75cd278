"""Service B of the cost e2e: a plain WSGI app served by gunicorn (forked workers).

``POST /enrich`` with a JSON list of calls: continues the caller's run (extracted by the
configured propagators from the request headers), opens a child run ``enrich`` and makes the
calls. Answers with the child run's id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import cost_common
from opentelemetry import context, propagate

from otel_runctx import run


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    length = int(environ.get("CONTENT_LENGTH") or 0)
    calls = json.loads(environ["wsgi.input"].read(length) or b"[]")
    token = context.attach(propagate.extract(headers))
    try:
        with run("enrich") as ctx:
            for spec in calls:
                cost_common.call(spec)
            body = json.dumps({"run_id": ctx.run_id}).encode()
    finally:
        context.detach(token)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
