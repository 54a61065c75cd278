"""Outcome delivery end to end: app under opentelemetry-instrument -> spool -> rotel -> sink.

Real parts only: the apps run under the real ``opentelemetry-instrument`` with
``OTEL_LOGS_EXPORTER=runctx_outcome`` (the entry point, constructed with no arguments), the
spool forwards with the stock OTLP/gRPC log exporter, and the collector is a real rotel that the
tests stop and start on the same ports.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from .harness import AppRunner, Collector, Sink, SinkLog, instrumented, wait_for

pytestmark = pytest.mark.e2e

OUTCOME = "runctx.outcome"

# Emits N explicit outcomes, each in its own run, timing emit_outcome alone; then either stays
# alive (so its worker can deliver) or SIGKILLs itself the moment the last call returned.
EMITTER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from otel_runctx import emit_outcome, run
    from otel_runctx.outcomes.active import get_active_spool

    count, then = int(sys.argv[1]), sys.argv[2]
    assert get_active_spool() is not None, "runctx_outcome did not switch the spool on"
    latencies = []
    for i in range(count):
        with run("delivery", event_id=f"E-{i}", customer_id="acme"):
            start = time.perf_counter()
            emit_outcome("success", value_amount=i)
            latencies.append(time.perf_counter() - start)
        if then == "kill" and i == count - 1:
            os.kill(os.getpid(), signal.SIGKILL)
    first, rest = latencies[0], sorted(latencies[1:])
    latencies.sort()
    print("EMITTED " + json.dumps({
        "count": count,
        "first_ms": first * 1000,
        "max_after_first_ms": rest[-1] * 1000,
        "max_ms": latencies[-1] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
    }), flush=True)
    time.sleep(600)
    """
)

# Does nothing but start under opentelemetry-instrument, so its spool worker takes over the
# journals of processes that died.
IDLE = "import time\nprint('IDLE', flush=True)\ntime.sleep(600)\n"


def _app_env(collector: Collector, spool: Path, protocol: str = "grpc") -> dict[str, str]:
    return collector.otlp_env(protocol) | {
        "OTEL_SERVICE_NAME": "outcome-delivery",
        "OTEL_LOGS_EXPORTER": "runctx_outcome",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_RUNCTX_OUTCOME_SPOOL": str(spool),
        # Fail fast while the collector is down, so the retry after it returns comes soon.
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
    }


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def _distinct_ids(sink: Sink, minimum: int) -> set[str]:
    ids = {str(r["attributes"]["runctx.outcome.id"]) for r in sink.logs(OUTCOME)}
    return ids if len(ids) >= minimum else set()


def _values(records: list[SinkLog]) -> set[int]:
    return {int(r["attributes"]["runctx.outcome.value_amount"]) for r in records}


def test_outcomes_emitted_during_a_collector_outage_all_arrive(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    collector.stop()
    script = _write(tmp_path, "emitter.py", EMITTER)
    app = apps.start(
        instrumented(script, "1000", "stay"),
        env=_app_env(collector, tmp_path / "spool" / "outcomes.sqlite3"),
    )
    app.wait_for_output("EMITTED", timeout=120)
    match = re.search(r"EMITTED (\{.*\})", app.output())
    assert match is not None
    timing = json.loads(match.group(1))
    print(
        f"emit_outcome while the collector was down: p50 {timing['p50_ms']:.3f} ms, "
        f"p99 {timing['p99_ms']:.3f} ms, max {timing['max_ms']:.3f} ms over {timing['count']} "
        f"(first call {timing['first_ms']:.3f} ms, max after it "
        f"{timing['max_after_first_ms']:.3f} ms)"
    )
    assert sink.logs(OUTCOME) == []  # nothing could have been delivered yet

    collector.start()  # same ports: the app's worker retries and gets through
    ids = wait_for(
        lambda: _distinct_ids(sink, 1000),
        timeout=120,
        message=lambda: f"1000 distinct outcome ids; have {len(_distinct_ids(sink, 0))}",
    )
    assert len(ids) == 1000
    records = sink.logs(OUTCOME)
    assert _values(records) == set(range(1000))
    one = records[0]
    assert one["resource"]["service.name"] == "outcome-delivery"
    assert one["attributes"]["runctx.workflow"] == "delivery"
    assert one["attributes"]["runctx.outcome.status"] == "success"
    assert one["trace_id"]  # linked to the run's root span
    duplicates = len(records) - len(ids)
    print(f"delivered {len(records)} records for {len(ids)} outcomes ({duplicates} re-sent)")
    assert app.is_running, app.describe()


def test_outcomes_of_a_killed_process_are_delivered_by_the_next_one(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    collector.stop()  # the first process must not get a chance to deliver anything
    spool = tmp_path / "spool" / "outcomes.sqlite3"
    env = _app_env(collector, spool)
    first = apps.start(
        instrumented(_write(tmp_path, "emitter.py", EMITTER), "200", "kill"), env=env
    )
    assert first.wait(timeout=60) == -9, first.describe()  # SIGKILL right after the last emit
    assert "EMITTED" not in first.output()
    journals = list((spool.parent / f"{spool.name}.intake").glob("*.journal"))
    assert journals, "the killed process left no journal"

    collector.start()
    second = apps.start(instrumented(_write(tmp_path, "idle.py", IDLE)), env=env)
    second.wait_for_output("IDLE", timeout=60)
    ids = wait_for(
        lambda: _distinct_ids(sink, 200),
        timeout=60,
        message=lambda: f"200 distinct outcome ids; have {len(_distinct_ids(sink, 0))}",
    )
    assert len(ids) == 200
    assert _values(sink.logs(OUTCOME)) == set(range(200))


def test_outcomes_are_forwarded_over_otlp_http_too(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    env = _app_env(collector, tmp_path / "spool" / "outcomes.sqlite3", "http/protobuf")
    apps.start(instrumented(_write(tmp_path, "emitter.py", EMITTER), "50", "stay"), env=env)
    ids = wait_for(
        lambda: _distinct_ids(sink, 50),
        timeout=60,
        message=lambda: f"50 distinct outcome ids; have {len(_distinct_ids(sink, 0))}",
    )
    assert len(ids) == 50
    assert _values(sink.logs(OUTCOME)) == set(range(50))


# Emits one outcome every few milliseconds until the file argv[1] appears, timing emit_outcome
# alone; prints how the delivery was set up first, and the figures at the end.
STEADY_EMITTER = textwrap.dedent(
    """
    import json, os, sys, time
    from otel_runctx import emit_outcome, run
    from otel_runctx.outcomes.active import get_active_delivery

    stop = sys.argv[1]
    delivery = get_active_delivery()
    state = "none" if delivery is None else ("durable" if delivery.spool else "degraded")
    print(f"DELIVERY {state}", flush=True)
    latencies = []
    i = 0
    while not os.path.exists(stop) and i < 20_000:
        with run("steady", event_id=f"E-{i}", customer_id="acme"):
            start = time.perf_counter()
            emit_outcome("success", value_amount=i)
            latencies.append(time.perf_counter() - start)
        i += 1
        if i % 100 == 0:
            print(f"PROGRESS {i}", flush=True)
        time.sleep(0.005)
    latencies.sort()
    print("EMITTED " + json.dumps({
        "count": i,
        "max_ms": latencies[-1] * 1000,
        "p999_ms": latencies[int(len(latencies) * 0.999)] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
    }), flush=True)
    time.sleep(600)
    """
)

OUTAGE_SECONDS = 30.0


def test_a_30_second_outage_under_zero_code_defaults_loses_and_duplicates_nothing(
    sink: Sink, collector: Collector, apps: AppRunner, tmp_path: Path
) -> None:
    """Only OTEL_EXPORTER_OTLP_ENDPOINT is set: the runctx distro's defaults (OTLP logs) make
    outcome delivery durable and sent once. The collector goes away for 30 s while the app
    emits, then comes back: every outcome arrives, each exactly once."""
    import time

    stop = tmp_path / "stop"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.grpc_endpoint,
        # Not an OTel setting: keeps the default spool path ($XDG_CACHE_HOME/otel-runctx/...)
        # inside this test's directory.
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    app = apps.start(
        instrumented(_write(tmp_path, "steady.py", STEADY_EMITTER), str(stop)), env=env
    )
    app.wait_for_output("DELIVERY", timeout=60)
    assert "DELIVERY durable" in app.output(), app.describe()
    wait_for(lambda: len(sink.logs(OUTCOME)) >= 20, timeout=60, message="first outcomes")
    collector.stop()
    time.sleep(OUTAGE_SECONDS)  # the outage itself: the app keeps emitting meanwhile
    collector.start()
    before = len(sink.logs(OUTCOME))
    wait_for(lambda: len(sink.logs(OUTCOME)) > before + 20, timeout=90, message="recovery")
    stop.write_text("")
    app.wait_for_output("EMITTED", timeout=60)
    match = re.search(r"EMITTED (\{.*\})", app.output())
    assert match is not None
    timing = json.loads(match.group(1))
    emitted = int(timing["count"])
    print(
        f"emit_outcome across a {OUTAGE_SECONDS:.0f} s collector outage, {emitted} calls: "
        f"p50 {timing['p50_ms']:.3f} ms, p99 {timing['p99_ms']:.3f} ms, "
        f"p99.9 {timing['p999_ms']:.3f} ms, max {timing['max_ms']:.3f} ms"
    )
    ids = wait_for(
        lambda: _distinct_ids(sink, emitted),
        timeout=120,
        message=lambda: f"{emitted} distinct outcome ids; have {len(_distinct_ids(sink, 0))}",
    )
    assert len(ids) == emitted
    time.sleep(1.0)  # a late second copy (the pipeline's own otlp, a re-send) would land now
    records = sink.logs(OUTCOME)
    assert _values(records) == set(range(emitted))
    assert len(records) == emitted, f"{len(records) - emitted} outcome(s) arrived twice"
    # Never waiting on the network: a call that did would take the exporter's timeout (10 s).
    # The bounds are generous because this box is shared; the figures are printed above.
    assert timing["p99_ms"] < 50, timing
    assert timing["max_ms"] < 2000, timing
    assert app.is_running, app.describe()
