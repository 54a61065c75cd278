"""@workflow on functions, coroutines, generators, async generators, methods, classmethods."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import RunContext, get_run_context, require_run_context, run, workflow


@dataclass
class Ticket:
    id: str
    customer: str


@workflow("handle", event_id=lambda t: t.id, customer_id=lambda t: t.customer)
def handle(ticket: Ticket) -> RunContext:
    return require_run_context()


def test_function_runs_as_a_run_with_ids_from_its_arguments(
    spans: InMemorySpanExporter,
) -> None:
    ctx = handle(Ticket("T-1", "cust-9"))
    assert (ctx.workflow, ctx.event_id, ctx.customer_id) == ("handle", "T-1", "cust-9")
    assert get_run_context() is None
    assert [s.name for s in spans.get_finished_spans()] == ["run handle"]
    assert handle.__name__ == "handle"


def test_callables_receive_keyword_arguments_too() -> None:
    @workflow("kw", event_id=lambda **kw: kw["event"], customer_id="static")
    def job(*, event: str) -> RunContext:
        return require_run_context()

    assert job(event="E-7").event_id == "E-7"


def test_nested_workflow_inherits_ids() -> None:
    @workflow("child")
    def child() -> RunContext:
        return require_run_context()

    with run("parent", event_id="e", customer_id="c", tenant_id="t") as parent:
        ctx = child()
    assert ctx.parent_run_id == parent.run_id
    assert (ctx.event_id, ctx.customer_id, ctx.tenant_id) == ("e", "c", "t")


def test_top_level_workflow_without_ids_is_a_clear_error() -> None:
    @workflow("orphan")
    def orphan() -> None:
        raise AssertionError("must not run")

    with pytest.raises(ValueError, match="event_id and customer_id"):
        orphan()


async def test_coroutine_function_stays_a_coroutine_function() -> None:
    @workflow("async-job", event_id="e", customer_id="c")
    async def job(delay: float) -> RunContext:
        await asyncio.sleep(delay)
        return require_run_context()

    assert inspect.iscoroutinefunction(job)
    first, second = await asyncio.gather(job(0.01), job(0))
    assert first.run_id != second.run_id
    assert get_run_context() is None


class Service:
    tenant = "acme"

    @workflow("method", event_id=lambda self, e: e, customer_id="c", tenant_id="acme")
    def method(self, event: str) -> RunContext:
        assert isinstance(self, Service)
        return require_run_context()

    @workflow("classmethod", event_id=lambda cls, e: e, customer_id="c")
    @classmethod
    def klass(cls, event: str) -> tuple[type, RunContext]:
        return cls, require_run_context()

    @workflow("async-method", event_id="e", customer_id="c")
    async def amethod(self) -> RunContext:
        return require_run_context()


async def test_methods_and_classmethods() -> None:
    ctx = Service().method("E-1")
    assert (ctx.workflow, ctx.event_id, ctx.tenant_id) == ("method", "E-1", "acme")
    cls, cctx = Service.klass("E-2")
    assert cls is Service and cctx.event_id == "E-2"
    assert (await Service().amethod()).workflow == "async-method"


def test_generator_run_does_not_leak_into_the_consumer_between_items(
    spans: InMemorySpanExporter,
) -> None:
    @workflow("stream", event_id="e", customer_id="c")
    def stream(n: int) -> Iterator[str]:
        for _ in range(n):
            yield require_run_context().run_id

    seen_by_consumer: list[RunContext | None] = []
    ids = []
    for run_id in stream(3):
        ids.append(run_id)
        seen_by_consumer.append(get_run_context())
    assert len(set(ids)) == 1
    assert seen_by_consumer == [None, None, None]
    assert [s.name for s in spans.get_finished_spans()] == ["run stream"]


def test_generator_inside_a_consumer_run_keeps_both_runs_apart() -> None:
    @workflow("stream")
    def stream() -> Iterator[RunContext]:
        yield require_run_context()
        yield require_run_context()

    with run("consumer", event_id="e", customer_id="c") as consumer:
        for item in stream():
            assert item.parent_run_id == consumer.run_id
            assert get_run_context() is consumer


def test_generator_send_throw_and_close(spans: InMemorySpanExporter) -> None:
    @workflow("echo", event_id="e", customer_id="c")
    def echo() -> Iterator[str]:
        received = yield "ready"
        try:
            while True:
                received = yield f"got {received} in {require_run_context().workflow}"
        except ValueError:
            yield "recovered"

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("x") == "got x in echo"
    assert gen.throw(ValueError("bad")) == "recovered"
    assert get_run_context() is None
    gen.close()
    assert [s.name for s in spans.get_finished_spans()] == ["run echo"]


def test_generator_error_is_recorded_on_its_run(spans: InMemorySpanExporter) -> None:
    @workflow("fails", event_id="e", customer_id="c")
    def fails() -> Iterator[int]:
        yield 1
        raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        list(fails())
    (span,) = spans.get_finished_spans()
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["exception.type"] == "RuntimeError"


async def test_async_generator_does_not_leak_between_items(
    spans: InMemorySpanExporter,
) -> None:
    @workflow("astream", event_id="e", customer_id="c")
    async def astream() -> AsyncIterator[str]:
        for _ in range(3):
            await asyncio.sleep(0)
            yield require_run_context().run_id

    assert inspect.isasyncgenfunction(astream) or hasattr(astream(), "__anext__")
    outside = []
    ids = []
    async for run_id in astream():
        ids.append(run_id)
        outside.append(get_run_context())
    assert len(set(ids)) == 1 and outside == [None, None, None]
    assert [s.name for s in spans.get_finished_spans()] == ["run astream"]


async def test_async_generator_closed_early_ends_its_run(spans: InMemorySpanExporter) -> None:
    @workflow("endless", event_id="e", customer_id="c")
    async def endless() -> AsyncIterator[int]:
        n = 0
        while True:
            yield n
            n += 1

    agen = endless()
    assert await agen.__anext__() == 0
    assert await agen.__anext__() == 1
    await agen.aclose()
    assert [s.name for s in spans.get_finished_spans()] == ["run endless"]
