"""The run crosses real process boundaries: HTTP between two services, and a Celery queue.

Every process runs under the real ``opentelemetry-instrument`` with contrib instrumentations
(FastAPI on the server, requests on the client, Celery on both sides of the queue) and exports
via OTLP to a real collector (rotel); assertions read what reached the sink behind it.
Propagation is configured the documented way: ``OTEL_PROPAGATORS=tracecontext,runctx``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from otel_runctx import keys
from otel_runctx.context import RunContext, with_run_context
from otel_runctx.propagation import RunContextPropagator
from otel_runctx.settings import load_settings

from .harness import (
    AppProcess,
    AppRunner,
    Collector,
    RedisServer,
    Sink,
    SinkSpan,
    fast_export_env,
    free_port,
    instrumented,
)

APPS = Path(__file__).resolve().parent / "apps"
NEW_KEY = "k-new:e2e-new-secret-0123456789abcdef"
OLD_KEY = "k-old:e2e-old-secret-0123456789abcdef"
RUN_KEYS = (keys.RUN_ID, keys.EVENT_ID, keys.CUSTOMER_ID, keys.TENANT_ID)


def service_env(collector: Collector, name: str, protocol: str, **extra: str) -> dict[str, str]:
    return {
        **collector.otlp_env(protocol),
        **fast_export_env(),
        "OTEL_SERVICE_NAME": name,
        "OTEL_PROPAGATORS": "tracecontext,runctx",
        "OTEL_LOGS_EXPORTER": "none",
        **extra,
    }


def start_b(apps: AppRunner, collector: Collector, protocol: str, **extra: str) -> str:
    port = free_port()
    b = apps.start(
        instrumented(APPS / "service_b.py", str(port)),
        env=service_env(collector, "service-b", protocol, OTEL_METRICS_EXPORTER="otlp", **extra),
        cwd=APPS,
        name="service_b",
    )
    b.wait_for_port(port, timeout=30)
    return f"http://127.0.0.1:{port}/work"


def run_a(
    apps: AppRunner, collector: Collector, protocol: str, url: str, label: str, **extra: str
) -> dict[str, Any]:
    a = apps.run(
        instrumented(APPS / "service_a.py", url, label),
        env=service_env(collector, "service-a", protocol, OTEL_METRICS_EXPORTER="none", **extra),
        cwd=APPS,
        name=f"service_a_{label}",
        timeout=60,
    )
    return last_json_line(a)


def last_json_line(app: AppProcess) -> dict[str, Any]:
    lines = [line for line in app.output().splitlines() if line.startswith("{")]
    assert lines, app.describe()
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def spans_of_service(sink: Sink, service: str, trace_id: str) -> list[SinkSpan]:
    return [
        s
        for s in sink.spans()
        if s["trace_id"] == trace_id and s["resource"].get("service.name") == service
    ]


def b_trace_for(sink: Sink, label: str) -> str:
    span = sink.wait_for_span(
        "b.work", lambda s: s["attributes"].get("test.label") == label, timeout=20
    )
    return span["trace_id"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_every_span_of_a_and_b_carries_a_run_and_shares_one_trace(
    collector: Collector, sink: Sink, apps: AppRunner, protocol: str
) -> None:
    url = start_b(apps, collector, protocol)
    label = f"hop-{protocol.replace('/', '-')}"
    a = run_a(apps, collector, protocol, url, label)
    expected = {
        keys.RUN_ID: a["run_id"],
        keys.EVENT_ID: f"evt-{label}",
        keys.CUSTOMER_ID: "cust-a",
        keys.TENANT_ID: "tenant-a",
    }
    # B saw A's run as its active run, and A's app baggage as ordinary baggage.
    assert a["b"]["run"] == {k.removeprefix("runctx."): v for k, v in expected.items()}
    assert a["b"]["baggage"] == {"app.origin": "service a/1+1"}

    trace_id = b_trace_for(sink, label)
    a_root = sink.wait_for_span("run checkout", lambda s: s["trace_id"] == trace_id)
    assert a_root["resource"]["service.name"] == "service-a"
    # A: its run span and the requests client span. B: the FastAPI server span, the ASGI
    # send/receive spans and our b.work span. All in A's trace, all stamped with A's run.
    sink.wait_for_spans(lambda s: s["trace_id"] == trace_id, count=4, timeout=20)
    a_spans = spans_of_service(sink, "service-a", trace_id)
    b_spans = spans_of_service(sink, "service-b", trace_id)
    assert {s["kind"] for s in a_spans} >= {"INTERNAL", "CLIENT"}
    assert {s["kind"] for s in b_spans} >= {"SERVER", "INTERNAL"}
    for span in a_spans + b_spans:
        stamped = {k: span["attributes"].get(k) for k in RUN_KEYS}
        assert stamped == expected, (span["name"], span["resource"]["service.name"])
    b_server = next(s for s in b_spans if s["kind"] == "SERVER")
    a_client = next(s for s in a_spans if s["kind"] == "CLIENT")
    assert b_server["parent_span_id"] == a_client["span_id"]
    # Run entries are not app baggage in B, so nothing re-stamps or forwards them as such.
    assert not any(k.startswith("runctx.") for k in a["b"]["baggage"])


def forged_header(customer: str, *, signing_keys: str | None) -> tuple[str, RunContext]:
    """A baggage header for a fresh run of ``customer``, signed with ``signing_keys`` if given."""
    env = {"OTEL_RUNCTX_SIGNING_KEYS": signing_keys} if signing_keys else {}
    run = RunContext.create("forged", event_id="evt-forged", customer_id=customer)
    carrier: dict[str, str] = {}
    RunContextPropagator(load_settings(env)).inject(carrier, context=with_run_context(run))
    return carrier["baggage"], run


def test_verify_mode_serves_forged_runs_without_their_values_and_accepts_signed_ones(
    collector: Collector, sink: Sink, apps: AppRunner
) -> None:
    # B is mid-rotation: it holds the new key and still the old one.
    url = start_b(
        apps,
        collector,
        "grpc",
        OTEL_RUNCTX_INBOUND="verify",
        OTEL_RUNCTX_SIGNING_KEYS=f"{NEW_KEY},{OLD_KEY}",
    )
    attacker_key = "k-new:attacker-guess-0123456789abcdef"
    genuine, _ = forged_header("cust-real", signing_keys=NEW_KEY)
    forgeries = {
        "unsigned": forged_header("forged-unsigned", signing_keys=None),
        "wrong-key": forged_header("forged-wrong-key", signing_keys=attacker_key),
        "unknown-key-id": forged_header("forged-unknown", signing_keys="k-evil:" + "x" * 20),
        "tampered": (genuine.replace("cust-real", "forged-tampered"), None),
    }
    assert "forged-tampered" in forgeries["tampered"][0]
    for label, (header, _) in forgeries.items():
        answer = requests.get(url, params={"label": label}, headers={"baggage": header}, timeout=10)
        assert answer.status_code == 200, label  # served...
        assert answer.json()["run"] is None, label  # ...without the forged run

    # Correctly signed (A signs with the new key) and rotated (A still signs with the old key).
    signed = run_a(apps, collector, "grpc", url, "signed", OTEL_RUNCTX_SIGNING_KEYS=NEW_KEY)
    rotated = run_a(apps, collector, "grpc", url, "rotated", OTEL_RUNCTX_SIGNING_KEYS=OLD_KEY)
    for a in (signed, rotated):
        assert a["b"]["run"]["run_id"] == a["run_id"]
        assert a["b"]["run"]["customer_id"] == "cust-a"

    for label, (_, forged_run) in forgeries.items():
        b_spans = spans_of_service(sink, "service-b", b_trace_for(sink, label))
        assert b_spans
        for span in b_spans:
            values = {str(v) for v in span["attributes"].values()}
            assert not any(v.startswith("forged") for v in values), (label, span)
            assert not [k for k in span["attributes"] if k.startswith("runctx.")], (label, span)
            if forged_run is not None:
                assert forged_run.run_id not in values
    for label, a in (("signed", signed), ("rotated", rotated)):
        b_spans = spans_of_service(sink, "service-b", b_trace_for(sink, label))
        assert b_spans and all(
            s["attributes"].get(keys.RUN_ID) == a["run_id"]
            and s["attributes"].get(keys.CUSTOMER_ID) == "cust-a"
            for s in b_spans
        )

    # B's counters reach the collector through the OTel metrics bridge.
    def counters(metric: dict[str, Any]) -> dict[str, int]:
        return {
            p["attributes"]["otel_runctx.counter"]: p["value"]
            for p in metric["data_points"]
            if p["attributes"].get("otel_runctx.counter", "").startswith("propagation.")
        }

    sink.wait_for_metrics(
        lambda m: (
            m["resource"].get("service.name") == "service-b"
            and counters(m).get("propagation.rejected_signature") == len(forgeries)
            and counters(m).get("propagation.accepted") == 2
        ),
        name="otel_runctx.events",
        timeout=20,
    )


def test_a_celery_task_runs_in_the_worker_under_the_enqueuing_run(
    collector: Collector, sink: Sink, apps: AppRunner, redis_server: RedisServer
) -> None:
    env = {"E2E_REDIS_URL": redis_server.url}
    worker = apps.start(
        instrumented(
            "-m", "celery", "-A", "celery_tasks", "worker", "--loglevel=INFO", "--concurrency=1"
        ),
        env=service_env(collector, "celery-worker", "grpc", OTEL_METRICS_EXPORTER="none", **env),
        cwd=APPS,
        name="celery_worker",
    )
    worker.wait_for_output("ready.", timeout=60)
    label = f"task-{uuid.uuid4().hex[:8]}"
    producer = apps.run(
        instrumented(APPS / "celery_tasks.py", label),
        env=service_env(collector, "celery-producer", "grpc", OTEL_METRICS_EXPORTER="none", **env),
        cwd=APPS,
        name="celery_producer",
        timeout=60,
    )
    result = last_json_line(producer)
    run_id = result["run_id"]
    # The task body saw the producer's run as its active run...
    assert result["worker_saw"] == {"run_id": run_id, "customer_id": "cust-celery"}
    # ...and every span the worker exported for it is stamped with that run.
    body = sink.wait_for_span(
        "task.body", lambda s: s["attributes"].get("test.label") == label, timeout=20
    )
    trace_id = body["trace_id"]
    sink.wait_for_spans(lambda s: s["trace_id"] == trace_id and s["kind"] == "CONSUMER", timeout=20)
    worker_spans = spans_of_service(sink, "celery-worker", trace_id)
    producer_spans = spans_of_service(sink, "celery-producer", trace_id)
    assert {s["kind"] for s in worker_spans} >= {"CONSUMER", "INTERNAL"}
    assert {s["kind"] for s in producer_spans} >= {"PRODUCER", "INTERNAL"}
    for span in worker_spans + producer_spans:
        assert span["attributes"].get(keys.RUN_ID) == run_id, span["name"]
        assert span["attributes"].get(keys.CUSTOMER_ID) == "cust-celery", span["name"]


def test_verify_mode_without_keys_stops_the_service_at_startup_with_a_clear_error(
    collector: Collector, apps: AppRunner
) -> None:
    # Failing closed: a service told to verify but given no keys must not quietly trust.
    b = apps.run(
        instrumented(APPS / "service_b.py", str(free_port())),
        env=service_env(collector, "service-b", "grpc", OTEL_RUNCTX_INBOUND="verify"),
        cwd=APPS,
        name="service_b_misconfigured",
        timeout=60,
        check=False,
    )
    assert b.returncode != 0
    assert "ConfigError: OTEL_RUNCTX_INBOUND=verify needs at least one key" in b.output()
