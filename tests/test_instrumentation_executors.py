"""Reused pool workers, uninstrument, and sharing the stdlib with the threading instrumentor."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.threading import ThreadingInstrumentor

from otel_runctx import RunContext, get_run_context, run, set_run_context, workflow
from otel_runctx.instrumentation import ExecutorContextInstrumentor
from otel_runctx.instrumentation.executors import _TARGETS

PLAIN_VAR: contextvars.ContextVar[str | None] = contextvars.ContextVar("plain", default=None)


@pytest.fixture(autouse=True)
def pristine_stdlib() -> Iterator[None]:
    """Put the stdlib methods back exactly as they were, whatever a test's instrumentors did."""
    saved = [(owner, name, vars(owner).get(name)) for owner, name, _ in _TARGETS]
    saved.append((threading.Timer, "start", vars(threading.Timer).get("start")))
    yield
    for instrumentor in (ExecutorContextInstrumentor(), ThreadingInstrumentor()):
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    for owner, name, original in saved:
        if original is None:
            if name in vars(owner):
                delattr(owner, name)
        else:
            setattr(owner, name, original)


def _new_run(i: int) -> RunContext:
    return RunContext.create("job", event_id=f"e-{i}", customer_id=f"c-{i}")


# -- a reused worker and a job that does not clean up -------------------------------------------


def _leaky_job(leaked: RunContext) -> None:
    set_run_context(leaked)  # no reset_run_context: the job leaves its run behind


def _reused_worker_serves_each_job_its_submitters_run(pool: ThreadPoolExecutor) -> None:
    """A one-worker pool: a job that leaves a run behind must not leak it into the next job."""
    leaked = _new_run(0)
    pool.submit(_leaky_job, leaked).result()
    assert pool.submit(get_run_context).result() is None
    for i in range(1, 4):
        with run("submitter", event_id=f"e-{i}", customer_id="c") as ctx:
            pool.submit(_leaky_job, leaked).result()
            assert pool.submit(get_run_context).result() is ctx
            assert list(pool.map(lambda _: get_run_context(), range(3))) == [ctx] * 3
    assert pool.submit(get_run_context).result() is None


def test_without_the_instrumentor_a_job_that_never_resets_poisons_the_next_job() -> None:
    leaked = _new_run(1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_leaky_job, leaked).result()
        assert pool.submit(get_run_context).result() is leaked  # the leak is real


def test_run_and_workflow_always_reset_so_a_reused_worker_stays_clean() -> None:
    @workflow("decorated", event_id="e-w", customer_id="c-w")
    def decorated_job() -> RunContext | None:
        return get_run_context()

    def run_job() -> RunContext:
        with run("scoped", event_id="e-s", customer_id="c-s") as ctx:
            return ctx

    def failing_job() -> None:
        with run("failing", event_id="e-f", customer_id="c-f"):
            raise ValueError("boom")

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(run_job).result() is not None
        assert pool.submit(get_run_context).result() is None
        assert pool.submit(decorated_job).result() is not None
        assert pool.submit(get_run_context).result() is None
        with pytest.raises(ValueError, match="boom"):
            pool.submit(failing_job).result()
        assert pool.submit(get_run_context).result() is None


def test_with_the_instrumentor_each_job_sees_exactly_its_submitters_run() -> None:
    ExecutorContextInstrumentor().instrument()
    with ThreadPoolExecutor(max_workers=1) as pool:
        _reused_worker_serves_each_job_its_submitters_run(pool)


def test_a_pool_worker_does_not_keep_the_run_of_the_job_that_created_it_alive() -> None:
    """Thread.start is patched too, and a pool worker is a thread started inside submit: it must
    not capture (and keep alive for its whole life) the context of whoever submitted first."""

    class Marker:
        pass

    ExecutorContextInstrumentor().instrument()
    key = otel_context.create_key("test.marker")
    marker = Marker()
    alive = weakref.ref(marker)
    with ThreadPoolExecutor(max_workers=1) as pool:
        token = otel_context.attach(otel_context.set_value(key, marker))
        try:
            assert pool.submit(otel_context.get_value, key).result() is marker
        finally:
            otel_context.detach(token)
        del marker
        gc.collect()
        assert alive() is None  # the worker thread is still running and holds no reference
        assert pool.submit(otel_context.get_value, key).result() is None


def test_uninstrument_restores_the_stdlib_methods() -> None:
    before = {(owner, name): vars(owner)[name] for owner, name, _ in _TARGETS}
    instrumentor = ExecutorContextInstrumentor()
    instrumentor.instrument()
    assert all(vars(owner)[name] is not before[(owner, name)] for owner, name in before)
    instrumentor.uninstrument()
    assert {(owner, name): vars(owner)[name] for owner, name, _ in _TARGETS} == before
    leaked = _new_run(1)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(_leaky_job, leaked).result()
        assert pool.submit(get_run_context).result() is leaked  # stdlib behaviour is back


# -- together with opentelemetry-instrumentation-threading --------------------------------------


def _jobs_see_their_submitters_run(threads: bool = True) -> None:
    """Submit from many runs across pool, map, run_in_executor and threads; check each job."""
    results: list[tuple[str, str | None]] = []

    def record(expected: str) -> None:
        current = get_run_context()
        results.append((expected, current.run_id if current else None))

    with ThreadPoolExecutor(max_workers=2) as pool:
        for i in range(20):
            with run("submitter", event_id=f"e-{i}", customer_id="c") as ctx:
                pool.submit(record, ctx.run_id).result()
                list(pool.map(record, [ctx.run_id] * 2))
                if threads:
                    thread = threading.Thread(target=record, args=(ctx.run_id,))
                    thread.start()
                    thread.join()

                async def in_loop(run_id: str = ctx.run_id) -> None:
                    await asyncio.get_running_loop().run_in_executor(pool, record, run_id)

                asyncio.run(in_loop())
    assert len(results) == 20 * (5 if threads else 4)
    assert all(expected == seen for expected, seen in results), results


def _plain_var_reaches_jobs() -> bool:
    """Only our instrumentor copies every contextvar; the threading one carries OTel context."""
    token = PLAIN_VAR.set("from submitter")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(PLAIN_VAR.get).result() == "from submitter"
    finally:
        PLAIN_VAR.reset(token)


def _stdlib_methods() -> dict[tuple[type, str], object]:
    return {(owner, name): vars(owner).get(name) for owner, name, _ in _TARGETS}


@pytest.mark.parametrize(
    "ours_first", [True, False], ids=["ours-then-threading", "threading-then-ours"]
)
def test_both_instrumentors_active_at_once_then_undone_in_reverse(ours_first: bool) -> None:
    original = _stdlib_methods()
    ours, theirs = ExecutorContextInstrumentor(), ThreadingInstrumentor()
    first, second = (ours, theirs) if ours_first else (theirs, ours)
    first.instrument()
    second.instrument()
    assert _plain_var_reaches_jobs()
    _jobs_see_their_submitters_run()
    second.uninstrument()
    assert _plain_var_reaches_jobs() is (first is ours)
    _jobs_see_their_submitters_run()
    first.uninstrument()
    assert _stdlib_methods() == original


def test_undoing_threading_first_removes_whichever_layer_is_on_top() -> None:
    # Fact (opentelemetry-instrumentation 0.66b1): unwrap() replaces the attribute with the
    # outermost layer's __wrapped__, whoever owns that layer. With ours instrumented after the
    # threading instrumentor, ThreadingInstrumentor().uninstrument() removes OUR layer and leaves
    # its own in place: its submit wrapper keeps carrying OTel context into pool jobs, while bare
    # threads lose it (its Thread.run wrapper and our Thread.start layer are both gone). Nothing
    # raises. Undo instrumentors in reverse order to get the stdlib back exactly.
    ours, theirs = ExecutorContextInstrumentor(), ThreadingInstrumentor()
    theirs.instrument()
    ours.instrument()
    theirs.uninstrument()
    assert not _plain_var_reaches_jobs()  # our layer is gone
    _jobs_see_their_submitters_run(threads=False)  # the threading submit layer is still active
    ours.uninstrument()  # does not raise, does not remove the threading layer
    _jobs_see_their_submitters_run(threads=False)


def test_undoing_ours_first_leaves_the_threading_instrumentor_working() -> None:
    ours, theirs = ExecutorContextInstrumentor(), ThreadingInstrumentor()
    ours.instrument()
    theirs.instrument()
    ours.uninstrument()  # ours is under theirs: it stays in the chain, disabled
    assert not _plain_var_reaches_jobs()
    _jobs_see_their_submitters_run()
    theirs.uninstrument()


def test_instrument_uninstrument_instrument_does_not_stack_layers() -> None:
    ours, theirs = ExecutorContextInstrumentor(), ThreadingInstrumentor()
    ours.instrument()
    theirs.instrument()
    ours.uninstrument()  # ours is under theirs: it stays in place, disabled
    ours.instrument()  # re-enabled, not wrapped a second time
    depth = 0
    layer: object = vars(ThreadPoolExecutor)["submit"]
    while hasattr(layer, "__wrapped__"):
        depth += 1
        layer = layer.__wrapped__
    assert depth == 2
    _jobs_see_their_submitters_run()
    assert _plain_var_reaches_jobs()


@pytest.mark.parametrize("with_instrumentor", [False, True], ids=["alone", "with-instrumentor"])
def test_context_pool_executor_gives_each_job_its_submitters_run(with_instrumentor: bool) -> None:
    from otel_runctx.isolation import ContextPoolExecutor

    if with_instrumentor:
        ExecutorContextInstrumentor().instrument()
    with ContextPoolExecutor(max_workers=1) as pool:
        _reused_worker_serves_each_job_its_submitters_run(pool)
        token = PLAIN_VAR.set("from submitter")
        try:
            assert pool.submit(PLAIN_VAR.get).result() == "from submitter"
        finally:
            PLAIN_VAR.reset(token)


def test_a_thread_we_cannot_patch_still_starts_and_the_failure_is_counted() -> None:
    from otel_runctx import stats

    ran = threading.Event()

    class FrozenRun(threading.Thread):
        @property
        def run(self) -> Callable[[], None]:  # type: ignore[override]
            return ran.set

    ExecutorContextInstrumentor().instrument()
    before = stats.snapshot().get("errors.instrumentation.thread_start", 0)
    thread = FrozenRun()
    thread.start()
    thread.join()
    assert ran.is_set()
    assert stats.snapshot()["errors.instrumentation.thread_start"] == before + 1


@pytest.mark.parametrize("kind", ["instrumentor", "context-pool"])
def test_every_job_gets_its_own_copy_even_from_one_submitter(kind: str) -> None:
    """Two jobs from the same submitter run at the same time: with one shared contextvars.Context
    the second ``Context.run`` would raise RuntimeError (a context can be entered by one thread
    only), and a value one job sets would show up in the other."""
    from otel_runctx.isolation import ContextPoolExecutor

    if kind == "instrumentor":
        ExecutorContextInstrumentor().instrument()
    pool_type = ContextPoolExecutor if kind == "context-pool" else ThreadPoolExecutor
    barrier = threading.Barrier(2, timeout=5)

    def job(name: str) -> tuple[str | None, str | None]:
        before = PLAIN_VAR.get()
        PLAIN_VAR.set(name)
        barrier.wait()  # both jobs are inside their contexts now
        return before, PLAIN_VAR.get()

    token = PLAIN_VAR.set("submitter")
    try:
        with pool_type(max_workers=2) as pool:
            first, second = pool.submit(job, "a"), pool.submit(job, "b")
            assert (first.result(), second.result()) == (("submitter", "a"), ("submitter", "b"))
        assert PLAIN_VAR.get() == "submitter"
    finally:
        PLAIN_VAR.reset(token)


def test_starting_a_thread_twice_fails_as_usual_and_leaves_nothing_behind() -> None:
    ExecutorContextInstrumentor().instrument()
    thread = threading.Thread(target=lambda: None)
    thread.start()
    thread.join()
    with pytest.raises(RuntimeError, match="once"):
        thread.start()
    assert "run" not in vars(thread)
