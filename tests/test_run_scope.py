"""run(): root span, nesting, and restoring the previous run on every kind of exit."""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_runctx import (
    NoRunContextError,
    RunContext,
    get_run_context,
    require_run_context,
    reset_run_context,
    run,
    set_run_context,
)
from otel_runctx.run_state.budget import Budget
from otel_runctx.runs import RunScope


def test_run_opens_a_root_span_carrying_the_run(spans: InMemorySpanExporter) -> None:
    with run("triage", event_id="evt-1", customer_id="cust-1", tenant_id="acme") as ctx:
        assert get_run_context() is ctx
        assert trace.get_current_span().is_recording()
    assert get_run_context() is None
    (root,) = spans.get_finished_spans()
    assert root.name == "run triage"
    assert root.kind is SpanKind.INTERNAL
    # Besides the run, the root span carries the run's outcome (runctx.outcome.*, and
    # runctx.usage.* once a usage roll-up processor exists in the process).
    run_attributes = {
        k: v
        for k, v in (root.attributes or {}).items()
        if not k.startswith(("runctx.outcome.", "runctx.usage.", "runctx.sample."))
    }
    assert run_attributes == dict(ctx.to_span_attributes())
    assert (root.attributes or {})["runctx.outcome.status"] == "success"


def test_run_span_kind_can_be_chosen(spans: InMemorySpanExporter) -> None:
    with run("ingest", event_id="e", customer_id="c", kind=SpanKind.CONSUMER):
        pass
    assert spans.get_finished_spans()[0].kind is SpanKind.CONSUMER


@pytest.mark.parametrize(
    ("kwargs", "missing"),
    [
        ({}, "event_id and customer_id"),
        ({"event_id": "e"}, "customer_id"),
        ({"customer_id": "c"}, "event_id"),
    ],
)
def test_top_level_run_names_what_is_missing(kwargs: dict[str, str], missing: str) -> None:
    with pytest.raises(ValueError, match=missing), run("triage", **kwargs):
        pass
    assert get_run_context() is None


def test_nested_run_is_a_child_and_restores_the_parent(spans: InMemorySpanExporter) -> None:
    with run("pipeline", event_id="evt", customer_id="cust", tenant_id="acme") as parent:
        with run("step") as child:
            assert get_run_context() is child
            assert child.parent_run_id == parent.run_id
            assert child.root_run_id == parent.run_id
            assert (child.event_id, child.customer_id, child.tenant_id) == ("evt", "cust", "acme")
        assert get_run_context() is parent
        with run("other-customer", customer_id="cust-2") as override:
            assert override.customer_id == "cust-2" and override.event_id == "evt"
    child_span, _, parent_span = spans.get_finished_spans()
    assert child_span.parent is not None
    assert child_span.parent.span_id == parent_span.context.span_id
    assert child_span.context.trace_id == parent_span.context.trace_id


def test_exception_is_recorded_and_previous_run_restored(spans: InMemorySpanExporter) -> None:
    with run("outer", event_id="e", customer_id="c") as outer:
        with pytest.raises(KeyError), run("inner"):
            raise KeyError("boom")
        assert get_run_context() is outer
    inner_span = spans.get_finished_spans()[0]
    assert inner_span.status.status_code is StatusCode.ERROR
    assert inner_span.events[0].name == "exception"
    assert inner_span.events[0].attributes is not None
    assert inner_span.events[0].attributes["exception.type"] == "KeyError"


def test_keyboard_interrupt_restores_the_previous_run(spans: InMemorySpanExporter) -> None:
    with pytest.raises(KeyboardInterrupt), run("job", event_id="e", customer_id="c"):
        raise KeyboardInterrupt
    assert get_run_context() is None
    assert spans.get_finished_spans()[0].status.status_code is StatusCode.ERROR


async def test_async_run_restores_after_cancellation(spans: InMemorySpanExporter) -> None:
    started = asyncio.Event()
    seen_inside: list[RunContext | None] = []

    async def job() -> None:
        async with run("slow", event_id="e", customer_id="c"):
            seen_inside.append(get_run_context())
            started.set()
            await asyncio.sleep(10)

    async with run("caller", event_id="e0", customer_id="c0") as caller:
        task = asyncio.create_task(job())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert get_run_context() is caller
    assert seen_inside[0] is not None and seen_inside[0].parent_run_id == caller.run_id
    slow = next(s for s in spans.get_finished_spans() if s.name == "run slow")
    assert slow.events[0].attributes is not None
    # OTel writes the module-qualified class name for exceptions outside builtins.
    assert slow.events[0].attributes["exception.type"] == "asyncio.exceptions.CancelledError"


def test_set_and_reset_run_context_by_token() -> None:
    first = RunContext.create("a", event_id="e", customer_id="c")
    second = RunContext.create("b", event_id="e", customer_id="c")
    token_1 = set_run_context(first)
    token_2 = set_run_context(second)
    assert get_run_context() is second
    reset_run_context(token_2)
    assert get_run_context() is first
    reset_run_context(token_1)
    assert get_run_context() is None


def test_set_run_context_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="RunContext"):
        set_run_context({"run_id": "x"})  # type: ignore[arg-type]


def test_require_run_context_outside_a_run_explains_how_to_start_one() -> None:
    with pytest.raises(NoRunContextError) as error:
        require_run_context()
    assert isinstance(error.value, RuntimeError)
    message = str(error.value)
    assert "otel_runctx.run(" in message and "@otel_runctx.workflow" in message
    with run("x", event_id="e", customer_id="c") as ctx:
        assert require_run_context() is ctx


def test_an_entry_is_a_fresh_scope_with_the_same_arguments() -> None:
    """Each ``with`` works on a copy built without ``__init__``: every slot is set, to what a
    scope built by ``__init__`` from the same arguments holds (a slot added later and missed
    by the copy fails here)."""
    previous = RunContext.create("first", event_id="e-0", customer_id="c-0")
    arguments: dict[str, object] = {
        "event_id": "e-1",
        "customer_id": "c-1",
        "tenant_id": "t-1",
        "deadline_seconds": 5.0,
        "kind": SpanKind.SERVER,
        "retry_of": previous,
        "budget": Budget(cost=1.0),
    }
    scope = RunScope("job", **arguments)  # type: ignore[arg-type]
    scope._entries.append(scope)  # state of the original must not be copied
    entry = scope._copy()
    fresh = RunScope("job", **arguments)  # type: ignore[arg-type]
    for name in RunScope.__slots__:
        assert getattr(entry, name) == getattr(fresh, name), name
    assert entry._entries is not scope._entries
