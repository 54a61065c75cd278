"""Every way work moves: which crossings carry the run by themselves, and which need our help.

Facts proven here (CPython 3.11): asyncio tasks, gather, TaskGroup and to_thread copy the context;
ThreadPoolExecutor.submit/map, loop.run_in_executor and threading.Thread do not, so work there
starts without the run unless ExecutorContextInstrumentor or ContextPoolExecutor carries it. A
plain generator runs each step in its consumer's context, not the one it was created in.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.trace import Tracer

from otel_runctx import RunContext, get_run_context, run, workflow
from otel_runctx.instrumentation import ExecutorContextInstrumentor
from otel_runctx.isolation import ContextPoolExecutor
from tests.stamping_helpers import by_name, runctx_attributes, stamped_tracer

Stamped = Callable[[], dict[str, object]]
TracerAndRuns = tuple[Tracer, Stamped]


@pytest.fixture
def tracer_and_runs() -> TracerAndRuns:
    """A stamped tracer, and a function giving each finished span's stamped run id by name."""
    tracer, exporter = stamped_tracer()

    def stamped() -> dict[str, object]:
        return {
            name: runctx_attributes(span).get("runctx.run_id")
            for name, span in by_name(exporter.get_finished_spans()).items()
        }

    return tracer, stamped


def _span(tracer: Tracer, name: str) -> None:
    with tracer.start_as_current_span(name):
        pass


# -- asyncio carries context by itself ----------------------------------------------------------


async def test_asyncio_tasks_gather_task_group_and_to_thread_carry_the_run(
    tracer_and_runs: TracerAndRuns,
) -> None:
    tracer, stamped = tracer_and_runs

    async def step(name: str) -> None:
        await asyncio.sleep(0)
        _span(tracer, name)

    async with run("job", event_id="e", customer_id="c") as ctx:
        await asyncio.create_task(step("task"))
        await asyncio.gather(step("gather-1"), step("gather-2"))
        if sys.version_info >= (3, 11):
            async with asyncio.TaskGroup() as group:
                group.create_task(step("task-group"))
        await asyncio.to_thread(_span, tracer, "to-thread")
    results = stamped()
    assert results.pop("task-group", ctx.run_id) == ctx.run_id
    assert results == dict.fromkeys(["task", "gather-1", "gather-2", "to-thread"], ctx.run_id)


# -- the stdlib drops the run; our instrumentor and ContextPoolExecutor carry it ----------------


def _cross_every_thread_boundary(tracer: Tracer, pool: ThreadPoolExecutor) -> None:
    pool.submit(_span, tracer, "submit").result()
    list(pool.map(_span, [tracer, tracer], ["map-1", "map-2"]))
    thread = threading.Thread(target=_span, args=(tracer, "thread"))
    thread.start()
    thread.join()
    timer = threading.Timer(0, _span, args=(tracer, "timer"))
    timer.start()
    timer.join()

    class Worker(threading.Thread):
        def run(self) -> None:  # a subclass that overrides run() instead of passing target=
            _span(tracer, "thread-subclass")

    worker = Worker()
    worker.start()
    worker.join()
    assert "run" not in vars(worker)  # nothing of ours is left on the thread object

    async def in_loop() -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _span, tracer, "run-in-executor-default")
        await loop.run_in_executor(pool, _span, tracer, "run-in-executor-pool")

    asyncio.run(in_loop())


POOL_SPANS = ["submit", "map-1", "map-2", "run-in-executor-pool"]
THREAD_SPANS = ["thread", "timer", "thread-subclass", "run-in-executor-default"]


def test_without_help_threads_pools_and_executors_drop_the_run(
    tracer_and_runs: TracerAndRuns,
) -> None:
    tracer, stamped = tracer_and_runs
    with ThreadPoolExecutor(2) as pool, run("job", event_id="e", customer_id="c"):
        _cross_every_thread_boundary(tracer, pool)
    assert stamped() == dict.fromkeys(POOL_SPANS + THREAD_SPANS, None)


def test_the_instrumentor_carries_the_run_into_every_thread_boundary(
    tracer_and_runs: TracerAndRuns, instrumented: None
) -> None:
    tracer, stamped = tracer_and_runs
    with ThreadPoolExecutor(2) as pool, run("job", event_id="e", customer_id="c") as ctx:
        _cross_every_thread_boundary(tracer, pool)
    assert stamped() == dict.fromkeys(POOL_SPANS + THREAD_SPANS, ctx.run_id)


def test_context_pool_executor_carries_the_run_without_patching(
    tracer_and_runs: TracerAndRuns,
) -> None:
    tracer, stamped = tracer_and_runs
    with ContextPoolExecutor(2) as pool, run("job", event_id="e", customer_id="c") as ctx:
        _cross_every_thread_boundary(tracer, pool)
    expected = dict.fromkeys(POOL_SPANS, ctx.run_id)
    expected.update(dict.fromkeys(THREAD_SPANS, None))  # not its pool: not its business
    assert stamped() == expected


# -- generators ---------------------------------------------------------------------------------


def test_a_plain_generator_runs_in_its_consumers_context(tracer_and_runs: TracerAndRuns) -> None:
    tracer, stamped = tracer_and_runs

    def produce() -> Iterator[int]:
        _span(tracer, "first-step")
        yield 1
        _span(tracer, "second-step")
        yield 2

    with run("creator", event_id="e", customer_id="c") as creator:
        items = produce()
        next(items)
    with run("consumer", event_id="e2", customer_id="c2") as consumer:
        next(items)
    assert stamped() == {"first-step": creator.run_id, "second-step": consumer.run_id}


def test_a_workflow_generator_stamps_its_own_run_and_not_the_consumers(
    tracer_and_runs: TracerAndRuns,
) -> None:
    tracer, stamped = tracer_and_runs
    seen: list[RunContext | None] = []

    @workflow("produce")
    def produce() -> Iterator[int]:
        seen.append(get_run_context())
        _span(tracer, "in-generator")
        yield 1

    with run("consumer", event_id="e", customer_id="c") as consumer:
        for _ in produce():
            _span(tracer, "in-consumer")
    inner = seen[0]
    assert inner is not None and inner.parent_run_id == consumer.run_id
    assert stamped() == {"in-generator": inner.run_id, "in-consumer": consumer.run_id}


def test_concurrent_multi_span_processor_needs_the_instrumentor() -> None:
    """Fact (SDK 1.45): ConcurrentMultiSpanProcessor calls on_start in its own thread pool, with
    parent_context=None unless the caller passed a context, so a processor there cannot see the
    caller's current context. The instrumentor's per-job context copy fixes that."""
    from opentelemetry.sdk.trace import ConcurrentMultiSpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_runctx.processors import RunContextSpanProcessor

    def stamped_run_id() -> object:
        multi = ConcurrentMultiSpanProcessor(num_threads=2)
        multi.add_span_processor(RunContextSpanProcessor())
        exporter = InMemorySpanExporter()
        provider = TracerProvider(active_span_processor=multi, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with run("job", event_id="e", customer_id="c") as ctx:
            provider.get_tracer("t").start_span("s").end()
        multi.shutdown()
        seen = runctx_attributes(exporter.get_finished_spans()[0]).get("runctx.run_id")
        return "this run" if seen == ctx.run_id else seen

    assert stamped_run_id() is None
    instrumentor = ExecutorContextInstrumentor()
    instrumentor.instrument()
    try:
        assert stamped_run_id() == "this run"
    finally:
        instrumentor.uninstrument()
