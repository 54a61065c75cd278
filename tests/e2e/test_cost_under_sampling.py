"""Cost you can bill by, end to end: exact tokens and cost per customer and event at any rate.

Three instrumented processes under the real ``opentelemetry-instrument``, exporting through a
real collector (rotel): service A (a script; openai-v2 instrumentation) runs one run per job,
calls service B (a WSGI app under gunicorn with forked workers; OpenInference instrumentation)
over HTTP and a Celery worker on a real Redis (both instrumentations on at once: each call makes
two nested spans reporting the same tokens). Every LLM call is the real ``openai`` SDK against
a small OpenAI-compatible server (tests/e2e/apps/fake_openai.py), streaming (with usage) and
not. Sampling is ``runctx_ratio`` at 1.0, 0.1 and 0.01.

Ground truth is the plan the test generates (the fake server's ledger confirms every call was
made); costs are genai-prices' own ``calc_price`` on each run's usage per model.
"""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from otel_runctx import keys
from otel_runctx.sampling import run_is_kept

from .harness import (
    AppRunner,
    Collector,
    HarnessTimeout,
    RedisServer,
    Sink,
    SinkLog,
    SinkSpan,
    fast_export_env,
    free_port,
    instrumented,
    opentelemetry_instrument,
    python,
    wait_for,
)

APPS = Path(__file__).resolve().parent / "apps"
CUSTOMERS = ("cust-acme", "cust-globex", "cust-initech")
JOBS = 30
DATED = {"gpt-4o": "gpt-4o-2024-08-06", "gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
SERVICES = ("cost-a", "cost-b", "cost-worker")


def make_plan(seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def calls(count: int) -> list[dict[str, Any]]:
        return [
            {
                "model": rng.choice(("gpt-4o", "gpt-4o-mini")),
                "prompt": rng.randint(1, 5000),
                "completion": rng.randint(1, 800),
                "stream": rng.random() < 0.5,
            }
            for _ in range(count)
        ]

    return [
        {
            "job": i,
            "customer_id": CUSTOMERS[i % 3],
            "tenant_id": f"tenant-{i % 2}",
            "event_id": f"evt-{seed}-{i // 2}",  # two runs per event
            "a": calls(1),
            "b": calls(rng.randint(1, 2)),
            "worker": [{**calls(1)[0], "stream": False}, {**calls(1)[0], "stream": True}],
        }
        for i in range(JOBS)
    ]


def run_cost(calls: list[dict[str, Any]]) -> tuple[int, int, Decimal]:
    """(input, output, cost) of one run: genai-prices on the run's usage per model."""
    per_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for spec in calls:
        per_model[DATED[spec["model"]]][0] += spec["prompt"]
        per_model[DATED[spec["model"]]][1] += spec["completion"]
    cost = sum(
        (
            calc_price(
                Usage(input_tokens=i, output_tokens=o), model, provider_id="openai"
            ).total_price
            for model, (i, o) in per_model.items()
        ),
        Decimal(0),
    )
    return sum(v[0] for v in per_model.values()), sum(v[1] for v in per_model.values()), cost


def truth(plan: list[dict[str, Any]], key: str) -> dict[str, tuple[int, int, Decimal]]:
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, 0, Decimal(0)])
    for job in plan:
        for part in ("a", "b", "worker"):
            tokens_in, tokens_out, cost = run_cost(job[part])
            total = totals[job[key]]
            total[0] += tokens_in
            total[1] += tokens_out
            total[2] += cost
    return {k: (v[0], v[1], v[2]) for k, v in totals.items()}


def from_outcomes(outcomes: list[SinkLog], key: str) -> dict[str, tuple[int, int, Decimal]]:
    totals: dict[str, list[Any]] = defaultdict(lambda: [0, 0, Decimal(0)])
    for outcome in outcomes:
        attributes = outcome["attributes"]
        total = totals[attributes[key]]
        total[0] += attributes["runctx.usage.input_tokens"]
        total[1] += attributes["runctx.usage.output_tokens"]
        total[2] += Decimal(attributes["runctx.usage.cost_decimal"])
    return {k: (v[0], v[1], v[2]) for k, v in totals.items()}


def env_for(
    collector: Collector, service: str, protocol: str, probability: float, extra: dict[str, str]
) -> dict[str, str]:
    return {
        **collector.otlp_env(protocol),
        **fast_export_env(),
        "OTEL_SERVICE_NAME": service,
        "OTEL_PROPAGATORS": "tracecontext,runctx",
        "OTEL_TRACES_SAMPLER": "runctx_ratio",
        "OTEL_TRACES_SAMPLER_ARG": str(probability),
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai",
        **extra,
    }


def one_rate(
    probability: float,
    seed: int,
    *,
    apps: AppRunner,
    collector: Collector,
    sink: Sink,
    redis_server: RedisServer,
    openai_url: str,
    ledger: Path,
    tmp_path: Path,
) -> None:
    plan = make_plan(seed)
    plan_path = tmp_path / f"plan-{seed}.json"
    plan_path.write_text(json.dumps(plan))
    shared = {
        "COST_OPENAI_URL": openai_url,
        "E2E_REDIS_URL": redis_server.url,
        "OTEL_RUNCTX_OUTCOME_SPOOL": str(tmp_path / f"spool-{seed}.db"),
    }
    b_port = free_port()
    b = apps.start(
        [
            str(opentelemetry_instrument()),
            str(Path(opentelemetry_instrument()).parent / "gunicorn"),
            "--workers=2",
            f"--bind=127.0.0.1:{b_port}",
            "--chdir",
            str(APPS),
            "cost_b:app",
        ],
        env=env_for(
            collector,
            "cost-b",
            "http/protobuf",
            probability,
            {
                **shared,
                "COST_OPENAI_INSTRUMENTATION": "oi",
                # B's own spool, so its forked workers send B's outcomes themselves (over
                # OTLP/HTTP with requests), not the other services' spool workers over gRPC.
                "OTEL_RUNCTX_OUTCOME_SPOOL": str(tmp_path / f"spool-b-{seed}.db"),
                # The setting: the stock OTLP log exporter next to ours, with the
                # requests instrumentation on (it would trace the spool's own exports).
                "OTEL_LOGS_EXPORTER": "otlp,runctx_outcome",
            },
        ),
        cwd=APPS,
        name=f"cost_b_{seed}",
    )
    worker = apps.start(
        [
            str(opentelemetry_instrument()),
            sys.executable,
            "-m",
            "celery",
            "-A",
            "cost_tasks",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
        ],
        env=env_for(
            collector,
            "cost-worker",
            "grpc",
            probability,
            {
                **shared,
                "COST_OPENAI_INSTRUMENTATION": "both",
                "OTEL_LOGS_EXPORTER": "runctx_outcome",
            },
        ),
        cwd=APPS,
        name=f"cost_worker_{seed}",
    )
    b.wait_for_port(b_port, timeout=60)
    worker.wait_for_output("ready.", timeout=90)
    a = apps.run(
        instrumented(APPS / "cost_a.py", str(plan_path), f"http://127.0.0.1:{b_port}/enrich"),
        env=env_for(
            collector,
            "cost-a",
            "grpc",
            probability,
            {**shared, "COST_OPENAI_INSTRUMENTATION": "v2", "OTEL_LOGS_EXPORTER": "runctx_outcome"},
        ),
        cwd=APPS,
        name=f"cost_a_{seed}",
        timeout=150,
    )
    jobs = [json.loads(line) for line in a.output().splitlines() if line.startswith('{"job"')]
    assert len(jobs) == JOBS, a.describe()
    run_ids = {job["run_id"] for job in jobs}
    calls_made = sum(len(job["a"]) + len(job["b"]) + len(job["worker"]) for job in plan)
    assert len(ledger.read_text().splitlines()) == calls_made

    def outcomes() -> list[SinkLog]:
        found: dict[str, SinkLog] = {}
        for log in sink.logs("runctx.outcome"):
            attributes = log["attributes"]
            if attributes.get(keys.ROOT_RUN_ID) in run_ids:
                found[attributes["runctx.outcome.id"]] = log  # at least once: one per id
        return list(found.values())

    got = wait_for(
        lambda: outcomes() if len(outcomes()) == 3 * JOBS else None,
        timeout=60,
        message=lambda: f"{3 * JOBS} outcomes; have {len(outcomes())}",
    )
    assert got is not None
    for outcome in got:
        attributes = outcome["attributes"]
        assert attributes["runctx.usage.complete"] is True
        assert attributes["runctx.usage.final"] is True
        assert attributes["runctx.sample.probability"] == probability
        assert "runctx.usage.cost_unpriced_models" not in attributes
        assert set(attributes["runctx.usage.cost_source_by_model"]) == {"genai-prices"}
    # Exact: integers for tokens, decimals for cost, summed over outcomes (each run once).
    assert from_outcomes(got, keys.CUSTOMER_ID) == truth(plan, "customer_id")
    assert from_outcomes(got, keys.EVENT_ID) == truth(plan, "event_id")
    assert from_outcomes(got, keys.TENANT_ID) == truth(plan, "tenant_id")
    # Lineage: the children of each job point at its root run.
    by_root: dict[str, set[str]] = defaultdict(set)
    for outcome in got:
        attributes = outcome["attributes"]
        by_root[attributes[keys.ROOT_RUN_ID]].add(attributes[keys.RUN_ID])
        if attributes[keys.RUN_ID] != attributes[keys.ROOT_RUN_ID]:
            assert attributes[keys.PARENT_RUN_ID] == attributes[keys.ROOT_RUN_ID]
    assert set(by_root) == run_ids
    # 0 runs partially kept: a job's spans are in the sink from every service, or from none.
    expected_kept = {root for root in run_ids if run_is_kept(root, probability)}
    if probability == 1.0:
        assert expected_kept == run_ids

    def services_by_root() -> dict[str, set[str]]:
        seen: dict[str, set[str]] = defaultdict(set)
        for span in sink.spans():
            root = span["attributes"].get(keys.ROOT_RUN_ID)
            if root in run_ids:
                seen[root].add(span["resource"].get("service.name"))
        return seen

    def all_kept_arrived() -> tuple[dict[str, set[str]]] | None:
        seen = services_by_root()
        done = all(seen.get(root) == set(SERVICES) for root in expected_kept)
        return (seen,) if done else None  # a tuple: truthy even when nothing was kept

    (seen,) = wait_for(
        all_kept_arrived,
        timeout=60,
        message=lambda: f"spans of kept runs {expected_kept} from {SERVICES}: {services_by_root()}",
    )
    # A has exited (its spans flushed); B and the worker exported theirs within 50 ms.
    assert set(seen) == expected_kept
    # Our own traffic is never exported as a span (in forked gunicorn workers too): no span
    # for the collector's OTLP endpoints, with or without a run. B's outcomes were all sent by
    # now, so such a span would have ended already; give its batch export a bounded moment.
    ports = {
        endpoint.rsplit(":", 1)[1]
        for endpoint in (collector.grpc_endpoint, collector.http_endpoint)
    }

    def own_traffic() -> list[SinkSpan]:
        return [
            span
            for span in sink.spans()
            if any(
                f":{port}/" in str(value) for port in ports for value in span["attributes"].values()
            )
        ]

    try:
        leaked = wait_for(own_traffic, timeout=3)
    except HarnessTimeout:
        leaked = []
    assert leaked == [], leaked[:2]
    b.stop()
    worker.stop()


@pytest.mark.e2e
def test_tokens_and_cost_per_customer_and_event_are_exact_at_every_sampling_rate(
    apps: AppRunner,
    collector: Collector,
    sink: Sink,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    port = free_port()
    ledger = tmp_path / "ledger.jsonl"
    ledger.touch()
    server = apps.start(
        python(APPS / "fake_openai.py", str(port), str(ledger)),
        name="fake_openai",
    )
    server.wait_for_port(port, timeout=30)
    for seed, probability in enumerate((1.0, 0.1, 0.01)):
        ledger.write_text("")
        one_rate(
            probability,
            seed,
            apps=apps,
            collector=collector,
            sink=sink,
            redis_server=redis_server,
            openai_url=f"http://127.0.0.1:{port}/v1",
            ledger=ledger,
            tmp_path=tmp_path,
        )
