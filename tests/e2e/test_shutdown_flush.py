"""SIGTERM loses nothing: real uvicorn, gunicorn and Celery, real signals (issue 12).

Each server runs under the real ``opentelemetry-instrument`` with 60 s batch delays, so every
span, log record and outcome of the requests served is still buffered when the test sends
SIGTERM to the server's main process (as ``docker stop`` does). All of them must reach the sink
through the real collector, and the server's exit status must be the one it has without
otel-runctx.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .harness import (
    AppRunner,
    Collector,
    RedisServer,
    Sink,
    free_port,
    opentelemetry_instrument,
)

APPS = Path(__file__).parent / "apps"
REQUESTS = 12
SPANS_PER_RUN = 3 + 1  # the steps and the run's root span
BIN = Path(sys.executable).parent


def _env(collector: Collector, service: str, **extra: str) -> dict[str, str]:
    return {
        **collector.otlp_env("grpc"),
        # Unique per test: a straggler of an earlier test's server must not count here.
        "OTEL_SERVICE_NAME": service,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_RUNCTX_OUTCOME_SPOOL": "off",  # outcomes go through the batch log processor
        "OTEL_BSP_SCHEDULE_DELAY": "60000",
        "OTEL_BLRP_SCHEDULE_DELAY": "60000",
        "PYTHONPATH": str(APPS),
        **extra,
    }


def _serve(port: int, count: int) -> set[str]:
    pids = set()
    for index in range(count):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/work?i={index}", timeout=20) as r:
            pids.add(r.read().decode().split()[0])
    return pids


def _ours(service: str) -> Callable[[Any], bool]:
    return lambda item: item["resource"].get("service.name") == service


def _roots(sink: Sink, service: str) -> list[Any]:
    return [s for s in sink.spans("run serve") if _ours(service)(s)]


def _assert_nothing_lost(sink: Sink, service: str, count: int) -> None:
    ours = _ours(service)
    sink.wait_for_spans(lambda s: ours(s) and s["name"] == "run serve", count=count, timeout=30)
    steps = sink.wait_for_spans(
        lambda s: ours(s) and s["name"].startswith("step-"), count=count * 3, timeout=30
    )
    assert len(steps) == count * 3
    sink.wait_for_logs(ours, event_name="shutdown.note", count=count, timeout=30)
    sink.wait_for_logs(ours, event_name="runctx.outcome", count=count, timeout=30)
    events = {s["attributes"]["runctx.event_id"] for s in _roots(sink, service)}
    assert events == {f"evt-{i}" for i in range(count)}, sink.summary()
    outcomes = {r["attributes"]["runctx.event_id"] for r in sink.logs("runctx.outcome") if ours(r)}
    assert outcomes == events


def _stop(app, timeout: float = 30.0) -> int:  # type: ignore[no-untyped-def]
    os.kill(app.pid, signal.SIGTERM)  # the main process only, as docker stop does
    return app.wait(timeout)


SERVERS = {
    "uvicorn": (["uvicorn", "shutdown_app:asgi"], -signal.SIGTERM),
    "uvicorn --workers 2": (["uvicorn", "shutdown_app:asgi", "--workers", "2"], None),
    "gunicorn sync": (["gunicorn", "shutdown_app:wsgi", "-w", "2"], 0),
    "gunicorn UvicornWorker": (
        ["gunicorn", "shutdown_app:asgi", "-w", "2", "-k", "uvicorn_worker.UvicornWorker"],
        0,
    ),
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_sigterm_exports_every_buffered_span_log_and_outcome(
    server: str, sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    argv, expected_status = SERVERS[server]
    port = free_port()
    bind = ["--port", str(port), "--host", "127.0.0.1"] if argv[0] == "uvicorn" else [
        "--bind", f"127.0.0.1:{port}"
    ]  # fmt: skip
    command = [str(opentelemetry_instrument()), str(BIN / argv[0]), *argv[1:], *bind]
    service = f"shutdown-{uuid.uuid4().hex[:8]}"
    app = apps.start(command, env=_env(collector, service), cwd=tmp_path, name=server)
    app.wait_for_port(port, timeout=60)
    _serve(port, REQUESTS)
    assert not _roots(sink, service), "exported before SIGTERM: the test proves nothing"
    status = _stop(app)
    if expected_status is not None:
        assert status == expected_status, app.describe()
    _assert_nothing_lost(sink, service, REQUESTS)


def test_celery_prefork_worker_exports_on_sigterm(
    sink: Sink,
    collector: Collector,
    apps: AppRunner,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    service = f"shutdown-{uuid.uuid4().hex[:8]}"
    env = _env(collector, service, E2E_REDIS_URL=redis_server.url)
    worker = apps.start(
        [
            str(opentelemetry_instrument()),
            str(BIN / "celery"),
            "-A",
            "celery_shutdown",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            "2",
            "--loglevel",
            "INFO",
        ],
        env=env,
        cwd=tmp_path,
        name="celery-worker",
    )
    worker.wait_for_output("ready", timeout=60)
    sent = apps.run(
        [sys.executable, str(APPS / "celery_shutdown.py"), str(REQUESTS)],
        env=env,
        cwd=tmp_path,
        name="celery-send",
        timeout=60,
    )
    done = json.loads(sent.output().strip().splitlines()[-1])
    assert done["served"] == REQUESTS
    assert not _roots(sink, service), "exported before SIGTERM: the test proves nothing"
    assert _stop(worker, timeout=60) == 0, worker.describe()
    _assert_nothing_lost(sink, service, REQUESTS)
