"""RunLocal: one value per run, seen wherever the run is carried, gone when the run ends."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import tracemalloc
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import (
    NoRunContextError,
    RunContext,
    RunLocal,
    require_run_context,
    reset_run_context,
    run,
    set_run_context,
    stats,
)
from otel_runctx.isolation import ContextPoolExecutor
from otel_runctx.run_state import local as run_local_module


class Value:
    """A weakly referenceable value, so tests can see when nothing holds it any more."""

    def __init__(self, label: str) -> None:
        self.label = label


def test_outside_a_run_get_gives_the_default_and_set_raises() -> None:
    local: RunLocal[str] = RunLocal("client")
    assert local.get() is None
    assert local.get("fallback") == "fallback"
    with pytest.raises(NoRunContextError):
        local.set("x")
    local.delete()  # a no-op outside a run


def test_each_run_sees_only_its_own_value() -> None:
    local: RunLocal[str] = RunLocal()
    with run("a", event_id="E1", customer_id="c"):
        assert local.get() is None
        local.set("a-value")
        assert local.get() == "a-value"
        with run("other-top-level", event_id="E2", customer_id="c", tenant_id="t"):
            pass
    with run("b", event_id="E2", customer_id="c"):
        assert local.get("none") == "none"


def test_two_run_locals_are_separate_slots() -> None:
    first: RunLocal[int] = RunLocal("first")
    second: RunLocal[int] = RunLocal("second")
    with run("a", event_id="E", customer_id="c"):
        first.set(1)
        second.set(2)
        assert (first.get(), second.get()) == (1, 2)
        first.delete()
        assert (first.get(), second.get()) == (None, 2)


def test_child_runs_do_not_see_the_parent_value_unless_inherit() -> None:
    plain: RunLocal[str] = RunLocal()
    inherited: RunLocal[str] = RunLocal(inherit=True)
    with run("parent", event_id="E", customer_id="c"):
        plain.set("parent")
        inherited.set("parent")
        with run("child"):
            assert plain.get() is None
            assert inherited.get() == "parent"
            with run("grandchild"):
                assert inherited.get() == "parent"
                inherited.set("grandchild")
                assert inherited.get() == "grandchild"
            inherited.set("child")
            assert inherited.get() == "child"
            inherited.delete()
            assert inherited.get() == "parent"  # the parent's shows through again
        assert plain.get() == "parent"
        assert inherited.get() == "parent"  # a child's set never changed the parent's


def test_a_retry_is_a_new_run_with_no_values() -> None:
    local: RunLocal[str] = RunLocal(inherit=True)
    with run("first", event_id="E", customer_id="c") as ctx:
        local.set("first")
    token = set_run_context(RunContext.create_retry(ctx))
    try:
        assert local.get() is None
    finally:
        reset_run_context(token)


def test_the_value_is_dropped_when_the_run_ends() -> None:
    local: RunLocal[Value] = RunLocal()
    value = Value("client")
    ref = weakref.ref(value)
    with run("a", event_id="E", customer_id="c") as ctx:
        local.set(value)
        del value
        assert local.get() is ref()
    gc.collect()
    assert ref() is None
    # Code that kept the run and runs on after it ended sees nothing, and cannot add back.
    before = stats.snapshot().get("run_local.set_after_end", 0)
    token = set_run_context(ctx)
    try:
        assert local.get() is None
        local.set(Value("late"))
        assert local.get() is None
    finally:
        reset_run_context(token)
    assert stats.snapshot()["run_local.set_after_end"] == before + 1


def test_a_run_never_ended_by_a_scope_frees_its_values_with_its_context() -> None:
    """A RunContext made active by hand: the values live as long as the run object does."""
    local: RunLocal[Value] = RunLocal()
    ctx = RunContext.create("manual", event_id="E", customer_id="c")
    token = set_run_context(ctx)
    value = Value("v")
    ref = weakref.ref(value)
    local.set(value)
    del value
    reset_run_context(token)
    del ctx, token
    gc.collect()
    assert ref() is None


def test_values_are_seen_in_threads_tasks_and_pool_jobs_that_carry_the_run(
    instrumented: None,
) -> None:
    local: RunLocal[str] = RunLocal()
    with run("a", event_id="E", customer_id="c"):
        local.set("mine")
        with ContextPoolExecutor(max_workers=2) as pool:
            assert pool.submit(local.get).result() == "mine"
        with ThreadPoolExecutor(max_workers=2) as pool:  # stock pool, instrumented
            assert pool.submit(local.get).result() == "mine"

        async def in_task() -> tuple[str | None, str | None]:
            return local.get(), await asyncio.to_thread(local.get)

        assert asyncio.run(in_task()) == ("mine", "mine")
        seen: list[str | None] = []
        thread = threading.Thread(target=lambda: seen.append(local.get()))
        thread.start()
        thread.join(timeout=30)
        assert seen == ["mine"]  # the instrumentor carries the run into threads too


def test_a_bare_thread_without_instrumentation_has_no_run_and_no_value() -> None:
    local: RunLocal[str] = RunLocal()
    seen: list[str | None] = []
    with run("a", event_id="E", customer_id="c"):
        local.set("mine")
        thread = threading.Thread(target=lambda: seen.append(local.get()))
        thread.start()
        thread.join(timeout=30)
    assert seen == [None]


def test_a_value_set_in_a_pool_job_is_seen_by_the_run_everywhere() -> None:
    local: RunLocal[str] = RunLocal()
    with run("a", event_id="E", customer_id="c"):
        with ContextPoolExecutor(max_workers=2) as pool:
            pool.submit(local.set, "from-job").result()
        assert local.get() == "from-job"


async def test_isolation_under_1000_concurrent_asyncio_runs() -> None:
    local: RunLocal[str] = RunLocal()
    inherited: RunLocal[str] = RunLocal(inherit=True)
    release = asyncio.Event()
    started = 0

    async def one(index: int) -> list[str | None]:
        nonlocal started
        async with run("agent", event_id=f"E-{index}", customer_id=f"c-{index}"):
            local.set(f"v-{index}")
            inherited.set(f"p-{index}")
            started += 1
            if started == 1000:
                release.set()
            await release.wait()  # all 1,000 runs are live at once from here
            seen = [local.get()]
            await asyncio.sleep(0)
            async with run("child"):
                seen += [local.get(), inherited.get()]
                await asyncio.sleep(0)
            seen.append(await asyncio.to_thread(local.get))
            return seen

    results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(1000))), 120)
    assert results == [[f"v-{i}", None, f"p-{i}", f"v-{i}"] for i in range(1000)]


def test_isolation_in_a_16_worker_pool() -> None:
    """32 request threads run 10 runs each; every run hands 5 jobs to one shared 16-worker pool
    and waits for them. Each job must see its own run's value, never one a job of another run
    left behind on the same worker."""
    local: RunLocal[str] = RunLocal()
    workers: set[str] = set()

    def job(expected: str) -> bool:
        workers.add(threading.current_thread().name)
        return local.get() == expected and require_run_context().event_id == expected

    def request(pool: ThreadPoolExecutor, thread_index: int) -> list[bool]:
        results = []
        for index in range(10):
            event_id = f"E-{thread_index}-{index}"
            with run("agent", event_id=event_id, customer_id="c"):
                local.set(event_id)
                jobs = [pool.submit(job, event_id) for _ in range(5)]
                results += [future.result(timeout=60) for future in jobs]
                results.append(local.get() == event_id)
        return results

    with ContextPoolExecutor(max_workers=16) as pool, ThreadPoolExecutor(32) as requests:
        outcomes = list(requests.map(lambda i: request(pool, i), range(32)))
    results = [ok for per_thread in outcomes for ok in per_thread]
    assert len(results) == 32 * 10 * 6 and all(results)
    # 1,600 jobs of 320 runs on at most 16 workers: jobs of different runs shared workers. How
    # many threads the pool starts depends on timing (it starts one only when none is idle).
    assert 1 < len(workers) <= 16


def runs_leave_no_state(count: int, spans: InMemorySpanExporter, trace_allocations: bool) -> None:
    """``count`` runs each set two RunLocals (one inherited); afterwards no value is alive, no
    object the collector knows still holds a RunLocal as a key, and (``trace_allocations``)
    nothing allocated by run_state/local.py is still held."""
    local: RunLocal[Value] = RunLocal()
    inherited: RunLocal[Value] = RunLocal(inherit=True)
    alive: weakref.WeakSet[Value] = weakref.WeakSet()
    gc.collect()
    if trace_allocations:
        tracemalloc.start()
    try:
        for index in range(count):
            with run("agent", event_id=f"E-{index}", customer_id="c"):
                value, shared = Value("v"), Value("p")
                alive.add(value)
                alive.add(shared)
                local.set(value)
                inherited.set(shared)
                assert local.get() is value and inherited.get() is shared
            if index % 1000 == 0:
                spans.clear()
        del value, shared
        gc.collect()
        held_bytes = 0
        if trace_allocations:
            held = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(True, run_local_module.__file__)]
            )
            held_bytes = sum(stat.size for stat in held.statistics("filename"))
    finally:
        if trace_allocations:
            tracemalloc.stop()
        spans.clear()
    assert len(alive) == 0
    holders = [o for o in gc.get_objects() if type(o) is dict and (local in o or inherited in o)]
    assert holders == []
    assert held_bytes == 0


def test_2000_runs_leave_no_run_local_state(spans: InMemorySpanExporter) -> None:
    runs_leave_no_state(2_000, spans, trace_allocations=True)  # 100,000 in make stress


@pytest.mark.stress
@pytest.mark.skipif(not os.environ.get("RUNCTX_STRESS"), reason="stress test: run by make stress")
def test_100000_runs_leave_no_run_local_state(spans: InMemorySpanExporter) -> None:
    runs_leave_no_state(100_000, spans, trace_allocations=False)
