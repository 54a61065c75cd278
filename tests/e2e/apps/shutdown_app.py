"""A tiny ASGI + WSGI app whose every request is one run with spans, a log record and an outcome.

Served by uvicorn (``shutdown_app:asgi``), gunicorn sync (``shutdown_app:wsgi``) and gunicorn's
UvicornWorker (``shutdown_app:asgi``) in the SIGTERM tests. ``/work?i=N`` answers ``pid N``.
Nothing is exported before SIGTERM: the tests set 60 s batch delays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from opentelemetry import trace
from opentelemetry._logs import get_logger

from otel_runctx import run

SPANS_PER_REQUEST = 3
tracer = trace.get_tracer("e2e.shutdown_app")


def work(query: str) -> bytes:
    index = parse_qs(query).get("i", ["0"])[0]
    with run("serve", event_id=f"evt-{index}", customer_id="cust-shutdown"):
        for step in range(SPANS_PER_REQUEST):
            with tracer.start_as_current_span(f"step-{step}", attributes={"test.i": index}):
                pass
        get_logger("e2e.shutdown_app").emit(body=f"served {index}", event_name="shutdown.note")
    return f"{os.getpid()} {index}".encode()


async def asgi(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = work(scope.get("query_string", b"").decode())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = work(environ.get("QUERY_STRING", ""))
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
