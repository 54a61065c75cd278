"""Budgets: a runaway agent loop stops itself within one LLM call of its cost or token limit."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from otel_runctx import (
    Budget,
    BudgetExceeded,
    RunStatus,
    get_run_context,
    require_run_context,
    run,
    stats,
    workflow,
)
from otel_runctx import settings as runctx_settings
from otel_runctx.isolation import ContextPoolExecutor
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from otel_runctx.settings import ConfigError, load_settings
from otel_runctx.usage import rollup, spend
from tests.test_outcomes import attributes_of, only_outcome, outcome_records

#: gpt-big: 2 per 1M input tokens, 8 per 1M output tokens. One call of 1,000 in / 200 out:
CALL_COST = 1000 * 2.0 / 1e6 + 200 * 8.0 / 1e6  # 0.0036
AGENT_MAX_CALLS = 50


@pytest.fixture
def tracer(provider: TracerProvider) -> Tracer:
    """A tracer whose spans reach the usage roll-up (and so the budget hooks)."""
    private = TracerProvider()
    private.add_span_processor(RunContextSpanProcessor())
    private.add_span_processor(UsageRollupProcessor())
    return private.get_tracer("fake-llm")


@pytest.fixture(autouse=True)
def prices(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": {"gpt-big": {"input": 2.0, "output": 8.0}}}))
    runctx_settings.reload_settings({"OTEL_RUNCTX_PRICES": str(path)})
    yield path
    runctx_settings.reload_settings()
    assert spend.live_budget_count() == 0  # every budgeted run let go of its budget
    assert not spend._hard_stopped


def llm_call(tracer: Tracer, tokens_in: int = 1000, tokens_out: int = 200) -> None:
    with tracer.start_as_current_span("chat gpt-big") as span:
        span.set_attribute("gen_ai.request.model", "gpt-big")
        span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
        span.set_attribute("gen_ai.usage.output_tokens", tokens_out)


def agent_loop(tracer: Tracer) -> int:
    """A fake agent that would call the model 50 times; it checks for cancellation each turn."""
    ctx = require_run_context()
    calls = 0
    while calls < AGENT_MAX_CALLS and not ctx.is_cancelled():
        llm_call(tracer)
        calls += 1
    return calls


async def async_agent_loop(tracer: Tracer) -> int:
    ctx = require_run_context()
    calls = 0
    while calls < AGENT_MAX_CALLS and not ctx.is_cancelled():
        await asyncio.sleep(0)
        llm_call(tracer)
        calls += 1
    return calls


def threaded_agent_loop(tracer: Tracer, pool: ThreadPoolExecutor) -> int:
    """Each model call runs as a pool job (ContextPoolExecutor carries the run there)."""
    ctx = require_run_context()
    calls = 0
    while calls < AGENT_MAX_CALLS and not ctx.is_cancelled():
        pool.submit(llm_call, tracer).result()
        calls += 1
    return calls


# 0.05 / 0.0036 = 13.9: the 14th call crosses the cost limit.
LIMITS = [
    pytest.param(Budget(cost=0.05), 14, "cost", id="cost"),
    pytest.param(Budget(input_tokens=10_000), 10, "input_tokens", id="input_tokens"),
    pytest.param(Budget(output_tokens=1_000), 5, "output_tokens", id="output_tokens"),
    pytest.param(Budget(llm_calls=7), 7, "llm_calls", id="llm_calls"),
]


def check_canceled_outcome(logs: InMemoryLogRecordExporter, limit: str, calls: int) -> None:
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == "canceled"
    assert event["runctx.outcome.reason"] == f"budget:{limit}"
    assert event["runctx.budget.exceeded"] == limit
    assert event["runctx.budget.exceeded_usage.llm_calls"] == calls
    assert event["runctx.budget.exceeded_usage.input_tokens"] == calls * 1000
    if limit == "cost":
        assert event["runctx.budget.exceeded_usage.cost"] == pytest.approx(calls * CALL_COST)
    else:  # cost is only tracked when a cost limit needs it
        assert "runctx.budget.exceeded_usage.cost" not in event
    assert event["runctx.usage.llm_calls"] == calls


@pytest.mark.parametrize(("budget", "expected_calls", "limit"), LIMITS)
def test_sync_agent_loop_stops_at_the_call_that_reaches_the_limit(
    logs: InMemoryLogRecordExporter, tracer: Tracer, budget: Budget, expected_calls: int, limit: str
) -> None:
    with run("agent", event_id="E-1", customer_id="acme", budget=budget) as ctx:
        calls = agent_loop(tracer)
        assert ctx.is_cancelled()
        assert ctx.cancellation_reason == f"budget:{limit}"
    assert calls == expected_calls
    check_canceled_outcome(logs, limit, calls)


@pytest.mark.parametrize(("budget", "expected_calls", "limit"), LIMITS)
async def test_async_agent_loop_stops_at_the_call_that_reaches_the_limit(
    logs: InMemoryLogRecordExporter, tracer: Tracer, budget: Budget, expected_calls: int, limit: str
) -> None:
    async with run("agent", event_id="E-1", customer_id="acme", budget=budget):
        calls = await async_agent_loop(tracer)
    assert calls == expected_calls
    check_canceled_outcome(logs, limit, calls)


@pytest.mark.parametrize(("budget", "expected_calls", "limit"), LIMITS)
def test_agent_loop_with_calls_in_pool_threads_stops_at_the_limit(
    logs: InMemoryLogRecordExporter, tracer: Tracer, budget: Budget, expected_calls: int, limit: str
) -> None:
    with ContextPoolExecutor(max_workers=4) as pool:
        with run("agent", event_id="E-1", customer_id="acme", budget=budget):
            calls = threaded_agent_loop(tracer, pool)
    assert calls == expected_calls
    check_canceled_outcome(logs, limit, calls)


def test_agents_in_parallel_threads_each_stop_at_their_own_limit(tracer: Tracer) -> None:
    """Eight runs in eight threads at once, different limits: none stops another."""
    results: dict[int, int] = {}

    def one(index: int) -> None:
        with run("agent", event_id=f"E-{index}", customer_id="c", budget=Budget(llm_calls=index)):
            results[index] = agent_loop(tracer)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {i: i for i in range(1, 9)}


def test_workflow_decorator_takes_a_budget(tracer: Tracer) -> None:
    @workflow("agent", event_id="E", customer_id="c", budget=Budget(output_tokens=400))
    def agent() -> tuple[int, str | None]:
        return agent_loop(tracer), require_run_context().cancellation_reason

    assert agent() == (2, "budget:output_tokens")
    assert agent() == (2, "budget:output_tokens")  # every call is a new run, a new budget


def test_remaining_budget_tells_what_is_left(tracer: Tracer) -> None:
    with run("plain", event_id="E", customer_id="c") as plain:
        assert plain.remaining_budget() is None
    with run("agent", event_id="E", customer_id="c", budget=Budget(cost=0.05, llm_calls=10)) as ctx:
        assert ctx.remaining_budget() == Budget(cost=0.05, llm_calls=10)
        for _ in range(3):
            llm_call(tracer)
        left = ctx.remaining_budget()
        assert left is not None
        assert left.llm_calls == 7
        assert left.cost == pytest.approx(0.05 - 3 * CALL_COST)
        assert left.input_tokens is None and left.output_tokens is None
        assert not ctx.is_cancelled()
        for _ in range(20):
            llm_call(tracer)
        assert ctx.remaining_budget() == Budget(cost=0.0, llm_calls=0)


def test_a_run_without_budget_registers_nothing(tracer: Tracer) -> None:
    with run("plain", event_id="E", customer_id="c") as ctx:
        with run("child"):
            for _ in range(3):
                llm_call(tracer)
            assert spend.live_budget_count() == 0
        assert ctx.remaining_budget() is None
        assert not ctx.is_cancelled()


def test_child_run_gets_a_share_of_what_the_parent_has_left(tracer: Tracer) -> None:
    with run("agent", event_id="E", customer_id="c", budget=Budget(input_tokens=10_000)) as parent:
        llm_call(tracer)
        llm_call(tracer)  # the parent spent 2,000 of 10,000
        with run("half", budget=Budget(share=0.5)) as child:
            assert child.remaining_budget() == Budget(input_tokens=4_000)
            assert agent_loop(tracer) == 4
            assert child.cancellation_reason == "budget:input_tokens"
        # The child's usage counts for the parent too; the parent goes on.
        assert not parent.is_cancelled()
        assert parent.remaining_budget() == Budget(input_tokens=4_000)
        with run("rest") as rest:  # no budget given: a share of 1
            assert rest.remaining_budget() == Budget(input_tokens=4_000)
            assert agent_loop(tracer) == 4
        assert parent.cancellation_reason == "budget:input_tokens"


def test_a_child_given_its_own_budget_keeps_it_and_the_parent_still_counts(
    tracer: Tracer,
) -> None:
    with run("agent", event_id="E", customer_id="c", budget=Budget(llm_calls=5)) as parent:
        with run("tool", budget=Budget(llm_calls=2, output_tokens=10_000)) as child:
            assert agent_loop(tracer) == 2
            assert child.cancellation_reason == "budget:llm_calls"
            # What the child may spend is the smaller of its own and the parent's.
            assert child.remaining_budget() == Budget(output_tokens=9_600, llm_calls=0)
        assert parent.remaining_budget() == Budget(llm_calls=3)
        with run("tool-2", budget=Budget(llm_calls=100)) as child:
            # The parent's limit is reached first; cancelling the parent cancels the child.
            assert agent_loop(tracer) == 3
            assert child.is_cancelled()
            assert child.cancellation_reason == "budget:llm_calls"
        assert parent.is_cancelled()


def test_a_share_applies_to_the_limits_a_child_does_not_set(tracer: Tracer) -> None:
    with run("agent", event_id="E", customer_id="c", budget=Budget(cost=0.1, llm_calls=10)):
        llm_call(tracer)
        with run("tool", budget=Budget(llm_calls=3, share=0.5)) as child:
            left = child.remaining_budget()
            assert left is not None and left.llm_calls == 3
            assert left.cost == pytest.approx((0.1 - CALL_COST) / 2)


def test_concurrent_calls_from_many_threads_add_up_exactly(tracer: Tracer) -> None:
    with ContextPoolExecutor(max_workers=8) as pool:
        with run("agent", event_id="E", customer_id="c", budget=Budget(llm_calls=1000)) as ctx:
            jobs = [pool.submit(llm_call, tracer) for _ in range(800)]
            for job in jobs:
                job.result(timeout=60)
            assert ctx.remaining_budget() == Budget(llm_calls=200)
            assert not ctx.is_cancelled()
            jobs = [pool.submit(llm_call, tracer) for _ in range(300)]
            for job in jobs:
                job.result(timeout=60)
            assert ctx.cancellation_reason == "budget:llm_calls"
            assert ctx.remaining_budget() == Budget(llm_calls=0)
            assert stats.snapshot().get("budget.exceeded", 0) >= 1


def test_a_share_without_a_parent_budget_is_no_budget(tracer: Tracer) -> None:
    with run("plain", event_id="E", customer_id="c"):
        with run("child", budget=Budget(share=0.5)) as child:
            assert child.remaining_budget() is None


def test_enforce_raise_makes_the_next_span_raise(
    logs: InMemoryLogRecordExporter, tracer: Tracer
) -> None:
    """An exception from a span processor's on_start reaches start_as_current_span: an SDK fact
    the hard stop relies on (SynchronousMultiSpanProcessor does not catch)."""
    calls = 0
    with pytest.raises(BudgetExceeded) as raised:
        with run(
            "agent", event_id="E", customer_id="c", budget=Budget(llm_calls=3, enforce="raise")
        ):
            with run("other-run-in-parallel-tree"):
                pass
            while calls < AGENT_MAX_CALLS:  # never checks for cancellation
                llm_call(tracer)
                calls += 1
    assert calls == 3
    assert raised.value.limit == "llm_calls"
    assert raised.value.usage["llm_calls"] == 3
    (event,) = [
        e for e in map(attributes_of, outcome_records(logs)) if e["runctx.workflow"] == "agent"
    ]
    assert event["runctx.outcome.status"] == "canceled"
    assert event["runctx.outcome.reason"] == "budget:llm_calls"
    assert event["runctx.outcome.error_type"] == "BudgetExceeded"
    # Other runs, and spans outside any run, are not stopped.
    with run("next", event_id="E2", customer_id="c"):
        llm_call(tracer)
    llm_call(tracer)


def test_enforce_raise_stops_child_runs_too(tracer: Tracer) -> None:
    with run("agent", event_id="E", customer_id="c", budget=Budget(llm_calls=1, enforce="raise")):
        llm_call(tracer)
        with run("child"), pytest.raises(BudgetExceeded):
            llm_call(tracer)
        with pytest.raises(BudgetExceeded):
            llm_call(tracer)


def test_enforce_cancel_never_raises(tracer: Tracer) -> None:
    with run("agent", event_id="E", customer_id="c", budget=Budget(llm_calls=1)) as ctx:
        for _ in range(5):
            llm_call(tracer)
        assert ctx.is_cancelled()


def test_default_budget_cost_applies_to_top_level_runs(tracer: Tracer, prices: Path) -> None:
    runctx_settings.reload_settings(
        {"OTEL_RUNCTX_PRICES": str(prices), "OTEL_RUNCTX_DEFAULT_BUDGET_COST": "0.01"}
    )
    with run("agent", event_id="E", customer_id="c") as ctx:
        assert ctx.remaining_budget() == Budget(cost=0.01)
        with run("child") as child:
            assert child.remaining_budget() == Budget(cost=0.01)
            assert agent_loop(tracer) == 3  # 3 x 0.0036 >= 0.01
        assert ctx.cancellation_reason == "budget:cost"
    with run("explicit", event_id="E", customer_id="c", budget=Budget(llm_calls=2)) as ctx:
        assert ctx.remaining_budget() == Budget(llm_calls=2)


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "inf", "nan"])
def test_a_bad_default_budget_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="OTEL_RUNCTX_DEFAULT_BUDGET_COST"):
        load_settings({"OTEL_RUNCTX_DEFAULT_BUDGET_COST": raw})
    assert load_settings({"OTEL_RUNCTX_DEFAULT_BUDGET_COST": " 0.5 "}).default_budget_cost == 0.5


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cost": -1},
        {"cost": float("inf")},
        {"cost": "1"},
        {"input_tokens": 1.5},
        {"output_tokens": -3},
        {"llm_calls": True},
        {"share": 0},
        {"share": 1.5},
        {"enforce": "stop"},
    ],
)
def test_an_invalid_budget_is_a_value_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="Budget"):
        Budget(**kwargs)


def test_budget_must_be_a_budget() -> None:
    with pytest.raises(TypeError, match="Budget"):
        run("agent", event_id="E", customer_id="c", budget=0.5)  # type: ignore[arg-type]


def test_an_unpriced_model_adds_no_cost_and_is_counted(tracer: Tracer) -> None:
    before = stats.snapshot().get("errors.budget.unpriced_llm_call", 0)
    with run("agent", event_id="E", customer_id="c", budget=Budget(cost=0.01)) as ctx:
        with tracer.start_as_current_span("chat") as span:
            span.set_attribute("gen_ai.request.model", "mystery-model")
            span.set_attribute("gen_ai.usage.input_tokens", 10**6)
        assert ctx.remaining_budget() == Budget(cost=0.01)
    assert stats.snapshot()["errors.budget.unpriced_llm_call"] == before + 1


def test_a_budget_without_the_usage_rollup_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rollup, "_enabled", False)
    before = stats.snapshot().get("errors.budget.no_usage_rollup", 0)
    with run("agent", event_id="E", customer_id="c", budget=Budget(cost=1.0)):
        pass
    assert stats.snapshot()["errors.budget.no_usage_rollup"] == before + 1


def test_spans_after_the_run_ended_do_not_count(tracer: Tracer) -> None:
    with run("agent", event_id="E", customer_id="c", budget=Budget(llm_calls=1)) as ctx:
        pass
    from otel_runctx import reset_run_context, set_run_context

    token = set_run_context(ctx)
    try:
        llm_call(tracer)
    finally:
        reset_run_context(token)
    assert not ctx.is_cancelled()
    assert ctx.remaining_budget() == Budget(llm_calls=1)
    assert get_run_context() is None


def test_outcome_of_a_budgeted_run_that_finished_in_budget(
    logs: InMemoryLogRecordExporter, tracer: Tracer
) -> None:
    with run("agent", event_id="E", customer_id="c", budget=Budget(cost=1.0)):
        llm_call(tracer)
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == RunStatus.SUCCESS.value
    assert event["runctx.budget.limit.cost"] == 1.0
    assert event["runctx.budget.spent.cost"] == pytest.approx(CALL_COST)
    assert "runctx.budget.exceeded" not in event
