"""What budgets cost: per LLM span (the roll-up's on_end with and without a budget) and per run.

The roll-up's ``on_end`` is timed on one real, ended SDK span carrying an LLM call's attributes,
fed to the processor over and over (the span is read-only there, so re-feeding it is what the
SDK does once per span). "budget hook" rows time the one call the roll-up makes per LLM span
(``spend.on_llm_usage``) alone: the cost a budget adds to each LLM span (goal: <= 1 us), which a
difference of two whole on_end timings would bury in noise. The per-run row times
the hooks every run scope now calls (budget start/end, RunLocal release) for a run without a
budget: the overhead runs that use neither feature pay.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from benchmarks._harness import Row
from benchmarks._harness import ns_per_op as _ns_per_op
from otel_runctx import Budget, RunContext, RunLocal, reset_run_context, run, set_run_context
from otel_runctx import settings as runctx_settings
from otel_runctx.run_state.local import release_run_locals
from otel_runctx.usage import rollup, spend
from otel_runctx.usage.rollup import UsageRollupProcessor

TITLE = "Budgets: cost per LLM span (roll-up on_end) and per run without a budget"

_HUGE = 10**15  # limits never reached while timing
_repeats = 5  # 1 in quick mode: each repeat starts with a gc.collect(), slow in a test session


def ns_per_op(operation: Callable[[], object], *, ops: int) -> float:
    return _ns_per_op(operation, ops=ops, repeats=_repeats)


def _llm_span(run: RunContext) -> ReadableSpan:
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("bench")
    span = tracer.start_span("chat", attributes=dict(run.to_span_attributes()))
    span.set_attribute("gen_ai.request.model", "gpt-big")
    span.set_attribute("gen_ai.usage.input_tokens", 1000)
    span.set_attribute("gen_ai.usage.output_tokens", 200)
    span.end()
    assert isinstance(span, ReadableSpan)
    return span


def _on_end_ns(processor: UsageRollupProcessor, budget: Budget | None, ops: int) -> float:
    run = RunContext.create("bench", event_id="e", customer_id="c")
    rollup.start_run(run.run_id)
    spend.start_run(run, None, budget)
    span = _llm_span(run)
    try:
        return ns_per_op(lambda: processor.on_end(span), ops=ops)
    finally:
        spend.end_run(run)
        rollup.finish_run(run.run_id)


def _hook_ns(budget: Budget | None, ops: int, depth: int = 1, others: bool = False) -> float:
    """The budget hook alone, as the roll-up calls it for one LLM span of a run ``depth`` deep
    in a budgeted tree (``budget=None``: a run without one; ``others``: while another run has a
    budget, so the registry is not empty)."""
    started: list[RunContext] = []
    parent: RunContext | None = None
    if others:
        other = RunContext.create("other", event_id="e", customer_id="c")
        spend.start_run(other, None, Budget(llm_calls=_HUGE))
        started.append(other)
    for level in range(depth):
        run = (
            parent.create_child(f"level-{level}")
            if parent is not None
            else RunContext.create("bench", event_id="e", customer_id="c")
        )
        spend.start_run(run, parent, budget if level == 0 else None)
        started.append(run)
        parent = run
    assert parent is not None
    run_id = parent.run_id
    try:
        return ns_per_op(lambda: spend.on_llm_usage(run_id, "gpt-big", 1000, 200), ops=ops)
    finally:
        for run in started:
            spend.end_run(run)


def _per_run_hooks_ns(ops: int) -> float:
    run = RunContext.create("bench", event_id="e", customer_id="c")

    def hooks() -> None:
        spend.start_run(run, None, None)
        spend.end_run(run)
        release_run_locals(run)

    return ns_per_op(hooks, ops=ops)


def _run_scope_ns(ops: int) -> float:
    def one_run() -> None:
        with run("bench", event_id="e", customer_id="c"):
            pass

    return ns_per_op(one_run, ops=ops)


def _run_local_ns(ops: int) -> tuple[float, float]:
    local: RunLocal[int] = RunLocal()
    run = RunContext.create("bench", event_id="e", customer_id="c")
    token = set_run_context(run)
    try:
        local.set(1)
        return ns_per_op(local.get, ops=ops), ns_per_op(lambda: local.set(2), ops=ops)
    finally:
        reset_run_context(token)


def measure(quick: bool) -> list[Row]:
    global _repeats
    _repeats = 1 if quick else 5
    ops = 2_000 if quick else 200_000
    processor = UsageRollupProcessor()
    directory = Path(tempfile.mkdtemp(prefix="runctx-bench-budget-"))
    prices = directory / "prices.json"
    prices.write_text(json.dumps({"models": {"gpt-big": {"input": 2.5, "output": 10.0}}}))
    runctx_settings.reload_settings({"OTEL_RUNCTX_PRICES": str(prices)})
    try:
        bare = _on_end_ns(processor, None, ops)
        with_budget = _on_end_ns(processor, Budget(input_tokens=_HUGE, llm_calls=_HUGE), ops)
        no_budgets = _hook_ns(None, ops)
        unbudgeted = _hook_ns(None, ops, others=True)
        tokens = _hook_ns(Budget(input_tokens=_HUGE, llm_calls=_HUGE), ops)
        cost = _hook_ns(Budget(cost=float(_HUGE)), ops)
        nested = _hook_ns(Budget(cost=float(_HUGE), llm_calls=_HUGE), ops, depth=3)
    finally:
        runctx_settings.reload_settings()
        shutil.rmtree(directory, ignore_errors=True)
    hooks = _per_run_hooks_ns(ops)
    scope = _run_scope_ns(max(ops // 20, 200))
    get_ns, set_ns = _run_local_ns(ops)
    return [
        Row("roll-up on_end, LLM span, no budget", bare),
        Row(
            "roll-up on_end, LLM span, token budget",
            with_budget,
            "roll-up on_end, LLM span, no budget",
            "the whole on_end, hook included",
        ),
        Row("budget hook: no budgeted run live", no_budgets, note="one dict truthiness test"),
        Row("budget hook: run without budget", unbudgeted, note="another run has one"),
        Row("budget hook: token budget", tokens, note="goal <= 1,000 ns"),
        Row("budget hook: cost budget", cost, note="priced per call; goal <= 1,000 ns"),
        Row("budget hook: 3 runs deep, cost", nested, note="adds to 3 budgets"),
        Row("run() scope, no budget", scope, note="the whole run, for scale"),
        Row(
            "per run, no budget: hooks",
            hooks,
            note=f"budget start/end + RunLocal release: {hooks / scope:.2%} of a run()",
        ),
        Row("RunLocal.get", get_ns),
        Row("RunLocal.set", set_ns),
    ]
