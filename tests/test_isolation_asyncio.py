"""1,000 concurrent asyncio runs: each task sees exactly its own run at every await point."""

from __future__ import annotations

import asyncio
import random

from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import get_run_context, require_run_context, run

RUNS = 1_000


async def test_concurrent_runs_never_see_each_other(spans: InMemorySpanExporter) -> None:
    tracer = trace.get_tracer("test")
    mismatches: list[str] = []
    rng = random.Random(7)
    delays = [[rng.random() / 1000 for _ in range(3)] for _ in range(RUNS)]

    async def one_run(i: int) -> str:
        async with run("fanout", event_id=f"evt-{i}", customer_id=f"cust-{i}") as ctx:
            for depth, delay in enumerate(delays[i]):
                await asyncio.sleep(delay)
                if require_run_context() is not ctx:
                    mismatches.append(f"run {i} at depth {depth}")
                with tracer.start_as_current_span(f"step-{depth}"):
                    await asyncio.sleep(0)
                    if require_run_context().event_id != f"evt-{i}":
                        mismatches.append(f"run {i} inside span {depth}")
            async with run(f"child-{i}") as child:
                await asyncio.sleep(0)
                if require_run_context() is not child or child.parent_run_id != ctx.run_id:
                    mismatches.append(f"child of run {i}")
            if get_run_context() is not ctx:
                mismatches.append(f"run {i} after child")
            return ctx.run_id

    run_ids = await asyncio.gather(*(one_run(i) for i in range(RUNS)))
    assert mismatches == []
    assert len(set(run_ids)) == RUNS
    assert get_run_context() is None

    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.name == "run fanout"]
    assert len(roots) == RUNS
    by_trace = {s.context.trace_id: s for s in roots}
    for span in finished:
        root = by_trace[span.context.trace_id]
        assert root.attributes is not None
        if span.name.startswith("run child-"):
            i = int(span.name.removeprefix("run child-"))
            assert span.attributes is not None
            assert span.attributes["runctx.parent_run_id"] == root.attributes["runctx.run_id"]
            assert span.attributes["runctx.event_id"] == f"evt-{i}"
            assert root.attributes["runctx.event_id"] == f"evt-{i}"
    assert len(finished) == RUNS * 5
