"""One run(...) object entered many times: nested, from tasks and from threads, each entry is
its own run with its own root span and outcome (issue 12)."""

from __future__ import annotations

import asyncio
import threading

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import get_run_context, run


def _roots(spans: InMemorySpanExporter) -> list[str]:
    return [
        str((s.attributes or {})["runctx.run_id"])
        for s in spans.get_finished_spans()
        if s.name == "run reused"
    ]


async def test_one_object_entered_by_two_tasks_gives_two_runs(
    spans: InMemorySpanExporter,
) -> None:
    scope = run("reused", event_id="e", customer_id="c")
    both_inside = asyncio.Barrier(2)
    seen: list[str] = []

    async def job() -> None:
        async with scope as ctx:
            await both_inside.wait()  # both entries are open at once
            await asyncio.sleep(0)
            assert get_run_context() is ctx
            seen.append(ctx.run_id)
        assert get_run_context() is None

    await asyncio.gather(job(), job())
    assert len(set(seen)) == 2
    assert sorted(_roots(spans)) == sorted(seen)


def test_one_object_entered_from_threads_gives_one_run_each(
    spans: InMemorySpanExporter,
) -> None:
    scope = run("reused", event_id="e", customer_id="c")
    barrier = threading.Barrier(4)
    seen: list[str] = []
    errors: list[BaseException] = []

    def job() -> None:
        try:
            with scope as ctx:
                barrier.wait(timeout=10)
                assert get_run_context() is ctx
                seen.append(ctx.run_id)
            assert get_run_context() is None
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert len(set(seen)) == 4
    assert sorted(_roots(spans)) == sorted(seen)


def test_nested_entry_of_the_same_object_is_a_child_run(spans: InMemorySpanExporter) -> None:
    scope = run("reused", event_id="e", customer_id="c")
    with scope as outer:
        with scope as inner:
            assert inner.parent_run_id == outer.run_id
            assert get_run_context() is inner
        assert get_run_context() is outer
    assert get_run_context() is None
    assert sorted(_roots(spans)) == sorted([outer.run_id, inner.run_id])


def test_sequential_reuse_gives_a_new_run_each_time(spans: InMemorySpanExporter) -> None:
    scope = run("reused", event_id="e", customer_id="c")
    with scope as first:
        pass
    with scope as second:
        pass
    assert first.run_id != second.run_id
    assert len(_roots(spans)) == 2
