"""10,000 concurrent asyncio runs sharing a 64-worker pool: every span carries exactly its run.

Each run creates spans at depth 1-3: in the task itself, in a pool job (run_in_executor or
submit), or in asyncio.to_thread. A quarter of the pool jobs misbehave: they set a run and never
reset it. After each run ends, a job submitted outside any run lands on a reused worker; its span
must carry no run at all.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from otel_runctx import RunContext, run, set_run_context
from tests.stamping_helpers import stamped_tracer

RUNS = 10_000
WORKERS = 64


def _nested_spans(tracer: Tracer, prefix: str, depth: int, leak: RunContext | None) -> None:
    with tracer.start_as_current_span(f"{prefix}-d1"):
        if depth > 1:
            _nested_spans(tracer, f"{prefix}-d1", depth - 1, None)
    if leak is not None:
        set_run_context(leak)  # never reset: without a context copy per job, the worker keeps it


async def _one_run(i: int, tracer: Tracer, pool: ThreadPoolExecutor, ids: list[str]) -> None:
    loop = asyncio.get_running_loop()
    depth = 1 + i % 3
    where = i % 4
    async with run("stress", event_id=f"evt-{i}", customer_id=f"cust-{i % 50}") as ctx:
        ids[i] = ctx.run_id
        await asyncio.sleep(0)
        if where == 0:
            with tracer.start_as_current_span(f"r{i}-task"):
                await asyncio.sleep(0)
                if depth > 1:
                    _nested_spans(tracer, f"r{i}-task", depth - 1, None)
        elif where == 1:
            await loop.run_in_executor(pool, _nested_spans, tracer, f"r{i}-pool", depth, None)
        elif where == 2:
            await asyncio.to_thread(_nested_spans, tracer, f"r{i}-to-thread", depth, None)
        else:
            leak = RunContext.create("leak", event_id="leaked", customer_id="leaked")
            job = pool.submit(_nested_spans, tracer, f"r{i}-leaky", depth, leak)
            await asyncio.wrap_future(job)
    await loop.run_in_executor(pool, _nested_spans, tracer, f"r{i}-after", 1, None)


@pytest.mark.usefixtures("instrumented")
def test_ten_thousand_concurrent_runs_and_a_shared_pool_never_mix(
    spans: InMemorySpanExporter,
) -> None:
    tracer, exporter = stamped_tracer()
    ids = [""] * RUNS
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:

        async def main() -> None:
            await asyncio.gather(*(_one_run(i, tracer, pool, ids) for i in range(RUNS)))

        asyncio.run(main())
    elapsed = time.perf_counter() - started

    finished = exporter.get_finished_spans()
    wrong_run, unstamped, stamped_after_end = [], [], []
    for span in finished:
        run_index = int(span.name[1:].split("-", 1)[0])
        stamped_id = (span.attributes or {}).get("runctx.run_id")
        if "-after" in span.name:
            if stamped_id is not None:
                stamped_after_end.append(span.name)
        elif stamped_id is None:
            unstamped.append(span.name)
        elif stamped_id != ids[run_index]:
            wrong_run.append(span.name)
    expected_spans = sum(1 + i % 3 for i in range(RUNS)) + RUNS
    print(f"\n{RUNS} runs, {len(finished)} spans, {WORKERS}-worker pool: {elapsed:.1f} s")
    assert (wrong_run, unstamped, stamped_after_end) == ([], [], [])
    assert len(finished) == expected_spans
    assert len(set(ids)) == RUNS
    assert len([s for s in spans.get_finished_spans() if s.name == "run stress"]) == RUNS
