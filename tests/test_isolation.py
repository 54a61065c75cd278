"""run_isolated: own run, own context, exceptions unchanged, a timeout ends the run as TIMEOUT."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_runctx import RunContext, RunStatus, get_run_context, require_run_context, run
from otel_runctx.isolation import run_isolated
from otel_runctx.runs import RunScope

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("isolation-test", default="caller")


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, object, object]]]:
    """Every RunScope.close call as (workflow, error type, status), still closing for real."""
    calls: list[tuple[str, object, object]] = []
    original = RunScope.close

    def spy(self: RunScope, error: BaseException | None, status: RunStatus | None = None) -> None:
        if self.span is not None:
            calls.append((self.run.workflow if self.run else "?", type(error), status))
        original(self, error, status)

    monkeypatch.setattr(RunScope, "close", spy)
    yield calls


def _new_run(name: str = "isolated") -> RunContext:
    return RunContext.create(name, event_id="e-iso", customer_id="c-iso")


def _use_context() -> RunContext:
    VAR.set("changed by callee")  # never reset: must not reach the caller
    return require_run_context()


def test_sync_callable_runs_as_its_own_run_and_leaves_the_caller_untouched(
    spans: InMemorySpanExporter, closes: list[tuple[str, object, object]]
) -> None:
    own = _new_run()
    with run("caller", event_id="e", customer_id="c") as caller:
        for timeout in (None, 5.0):
            assert run_isolated(_use_context, run=own, timeout=timeout) is own
            assert get_run_context() is caller
            assert VAR.get() == "caller"
    roots = [s for s in spans.get_finished_spans() if s.name == "run isolated"]
    assert len(roots) == 2
    assert all((s.attributes or {})["runctx.run_id"] == own.run_id for s in roots)
    assert closes == [("isolated", type(None), None)] * 2 + [("caller", type(None), None)]


def test_arguments_reach_the_callable() -> None:
    def add(a: int, b: int, *, scale: int) -> int:
        return (a + b) * scale

    assert run_isolated(add, 1, 2, scale=10, run=_new_run()) == 30
    assert run_isolated(add, 1, 2, scale=10, run=_new_run(), timeout=5) == 30


@pytest.mark.parametrize("timeout", [None, 5.0])
def test_sync_exceptions_propagate_unchanged(
    timeout: float | None, closes: list[tuple[str, object, object]]
) -> None:
    error = KeyError("original")

    def fail() -> None:
        raise error

    with pytest.raises(KeyError) as caught:
        run_isolated(fail, run=_new_run(), timeout=timeout)
    assert caught.value is error
    assert closes == [("isolated", KeyError, None)]


def test_a_sync_timeout_ends_the_run_as_timeout_and_requests_cancellation(
    spans: InMemorySpanExporter, closes: list[tuple[str, object, object]]
) -> None:
    stopped = threading.Event()

    def cooperative() -> None:
        current = require_run_context()
        while not current.is_cancelled():
            time.sleep(0.005)
        stopped.set()

    own = _new_run()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=own.run_id):
        run_isolated(cooperative, run=own, timeout=0.05)
    assert time.monotonic() - started < 5
    assert own.is_cancelled() and own.cancellation_reason == "timeout"
    assert stopped.wait(5), "cooperative code should see the cancellation and stop"
    assert closes == [("isolated", TimeoutError, RunStatus.TIMEOUT)]
    (root,) = [s for s in spans.get_finished_spans() if s.name == "run isolated"]
    assert root.status.status_code is StatusCode.ERROR


def test_a_thread_that_ignores_the_timeout_keeps_running_but_the_run_ends_once(
    closes: list[tuple[str, object, object]],
) -> None:
    release = threading.Event()
    finished = threading.Event()

    def stubborn() -> str:
        release.wait(5)
        finished.set()
        return "late"

    with pytest.raises(TimeoutError):
        run_isolated(stubborn, run=_new_run(), timeout=0.02)
    assert not finished.is_set()  # Python cannot stop the thread: it is still running
    release.set()
    assert finished.wait(5)
    time.sleep(0.05)
    assert closes == [("isolated", TimeoutError, RunStatus.TIMEOUT)]  # no second end


def test_the_callables_own_timeout_error_is_not_mistaken_for_ours(
    closes: list[tuple[str, object, object]],
) -> None:
    error = TimeoutError("the callee's own timeout")

    def fail() -> None:
        raise error

    with pytest.raises(TimeoutError) as caught:
        run_isolated(fail, run=_new_run(), timeout=5)
    assert caught.value is error
    assert closes == [("isolated", TimeoutError, None)]


def test_bad_arguments_are_rejected_clearly() -> None:
    with pytest.raises(TypeError, match="run=RunContext"):
        run_isolated(print, run="not a run")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        run_isolated(print, run=_new_run(), timeout=0)


# -- async --------------------------------------------------------------------------------------


async def _async_use_context(delay: float = 0) -> RunContext:
    await asyncio.sleep(delay)
    return _use_context()


async def test_async_callable_returns_an_awaitable_and_runs_as_its_own_run(
    closes: list[tuple[str, object, object]],
) -> None:
    own = _new_run()
    async with run("caller", event_id="e", customer_id="c") as caller:
        awaitable = run_isolated(_async_use_context, 0, run=own, timeout=5)
        assert asyncio.iscoroutine(awaitable)
        assert await awaitable is own
        assert get_run_context() is caller
        assert VAR.get() == "caller"
    assert closes == [("isolated", type(None), None), ("caller", type(None), None)]


async def test_async_exceptions_propagate_unchanged(
    closes: list[tuple[str, object, object]],
) -> None:
    error = LookupError("original")

    async def fail() -> None:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(LookupError) as caught:
        await run_isolated(fail, run=_new_run(), timeout=None)
    assert caught.value is error
    assert closes == [("isolated", LookupError, None)]


async def test_an_async_timeout_cancels_the_task_and_ends_the_run_as_timeout(
    closes: list[tuple[str, object, object]],
) -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    own = _new_run()
    with pytest.raises(TimeoutError, match=own.run_id):
        await run_isolated(slow, run=own, timeout=0.05)
    assert cancelled.is_set()
    assert own.is_cancelled()
    assert closes == [("isolated", TimeoutError, RunStatus.TIMEOUT)]


async def test_concurrent_isolated_runs_each_see_only_their_own_run() -> None:
    runs = [_new_run(f"iso-{i}") for i in range(200)]
    results = await asyncio.gather(
        *(run_isolated(_async_use_context, 0.001, run=r, timeout=5) for r in runs)
    )
    assert all(seen is expected for seen, expected in zip(results, runs, strict=True))
    assert get_run_context() is None


async def test_cancelling_the_caller_cancels_the_isolated_task_and_ends_the_run(
    closes: list[tuple[str, object, object]],
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    own = _new_run()
    caller = asyncio.ensure_future(run_isolated(slow, run=own, timeout=None))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await asyncio.wait_for(cancelled.wait(), 5)
    assert own.is_cancelled()
    assert closes == [("isolated", asyncio.CancelledError, None)]
