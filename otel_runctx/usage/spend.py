"""Live spend of budgeted runs: where the usage roll-up meets ``run(..., budget=...)``.

The roll-up calls two hooks, and nothing else here touches it:

- :func:`on_llm_usage` from ``UsageRollupProcessor.on_end`` for every LLM span of a tracked run,
  with the run id, model and token counts it read. The run's budget (and every budgeted
  ancestor's) adds the call; a run that reaches a limit is cancelled (``budget:<limit>``).
- :func:`check_span_start` from ``UsageRollupProcessor.on_start``: raises
  :class:`~otel_runctx.run_state.budget.BudgetExceeded` when the span's run has a used-up
  ``enforce="raise"`` budget. Free (one truthiness test) until such a budget was crossed.

Run scopes call :func:`start_run` / :func:`end_run`. Only runs with a budget are registered, so
runs without one cost an attribute read at start and end, and LLM spans of runs without one a
dict truthiness test. The cost of a call is priced by :func:`_call_cost`, the one place that
knows about prices.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from opentelemetry.context import Context

from otel_runctx.context import RunContext, get_run_context
from otel_runctx.run_state.budget import Budget, RunBudget
from otel_runctx.settings import Settings, get_settings
from otel_runctx.stats import count, report_error
from otel_runctx.usage.prices import ModelPrice, get_price_table

__all__ = [
    "budget_of",
    "check_span_start",
    "end_run",
    "live_budget_count",
    "on_llm_usage",
    "start_run",
]

#: Most budgeted runs live at once; a budgeted run beyond this is not enforced (counted).
MAX_LIVE_BUDGETS = 100_000

_INHERIT = Budget()  # a child run given no budget: a share of 1 of its parent's
_lock = threading.Lock()
_live: dict[str, RunBudget] = {}
#: Runs (ids) whose enforce="raise" budget was crossed and that are still live.
_hard_stopped: set[str] = set()
#: The settings the price lookup was resolved for, and the model -> price table then in force.
_prices: tuple[Settings, Mapping[str, ModelPrice]] | None = None


def budget_of(run: RunContext) -> RunBudget | None:
    """The live budget of ``run`` (shared by every copy of it), or None."""
    return run._cancellation.budget


def start_run(run: RunContext, parent: RunContext | None, budget: Budget | None) -> None:
    """Give a run that starts its budget: ``budget``, else a share of ``parent``'s, else (for a
    top-level run) ``OTEL_RUNCTX_DEFAULT_BUDGET_COST``. No budget, no work.

    ``parent`` is the run active where ``run`` starts; it only counts if it is ``run``'s parent
    (a run built elsewhere and started with ``run_context=`` may belong to another tree).
    """
    parent_budget = None
    if parent is not None and parent.run_id == run.parent_run_id:
        parent_budget = parent._cancellation.budget
    if budget is None:
        if parent_budget is not None:
            budget = _INHERIT
        elif run.parent_run_id is None:
            default_cost = get_settings().default_budget_cost
            if default_cost is None:
                return
            budget = Budget(cost=default_cost)
        else:
            return
    elif parent_budget is None and not budget.has_limits:
        return  # a share of nothing
    try:
        state = run._cancellation
        live = RunBudget(run.run_id, budget, state.request, parent_budget)
        with _lock:
            if len(_live) >= MAX_LIVE_BUDGETS:
                count("budget.runs_not_tracked")
                return
            _live[run.run_id] = live
        state.budget = live
        from otel_runctx.usage import rollup  # here: the roll-up imports this module

        if not rollup._enabled:
            report_error(
                "budget.no_usage_rollup",
                message="a run has a budget but no UsageRollupProcessor is on the tracer "
                "provider, so no usage reaches it (configure() and opentelemetry-instrument add "
                "one; add otel_runctx.processors.UsageRollupProcessor() yourself otherwise)",
            )
    except Exception as error:
        report_error("budget.start", error)


def end_run(run: RunContext) -> None:
    """Stop adding usage to a run that ended (its budget stays readable on the RunContext)."""
    live = run._cancellation.budget
    if live is None:
        return
    with _lock:
        if _live.get(run.run_id) is live:
            del _live[run.run_id]
        _hard_stopped.discard(run.run_id)


def on_llm_usage(run_id: str, model: str | None, input_tokens: int, output_tokens: int) -> None:
    """The roll-up's hook: one LLM call of ``run_id`` ended with these token counts."""
    if not _live:
        return
    live = _live.get(run_id)
    if live is None:
        return
    try:
        cost = 0.0
        if live.needs_cost:
            priced = _call_cost(model, input_tokens, output_tokens)
            if priced is None:
                report_error(
                    "budget.unpriced_llm_call",
                    message=f"model {model!r} has no price, so this call adds no cost to the "
                    "run's budget (set OTEL_RUNCTX_PRICES)",
                )
            else:
                cost = priced
        crossed = live.add(cost, input_tokens, output_tokens)
        if crossed:
            count("budget.exceeded", len(crossed))
            with _lock:
                for node in crossed:
                    if node.enforce == "raise" and _live.get(node.run_id) is node:
                        _hard_stopped.add(node.run_id)
    except Exception as error:
        report_error("budget.on_llm_usage", error)


def hard_stop_pending() -> bool:
    """True while some live run's ``enforce="raise"`` budget is used up: a sampler that would
    drop a span must then record it, so that the roll-up's start hook can stop the run."""
    return bool(_hard_stopped)


def check_span_start(parent_context: Context | None) -> None:
    """The roll-up's start hook: raise BudgetExceeded if the span's run is hard-stopped."""
    if not _hard_stopped:
        return
    try:
        run = get_run_context(parent_context) or get_run_context()
        live = run._cancellation.budget if run is not None else None
        error = live.hard_stop() if live is not None else None
    except Exception as failure:
        report_error("budget.check_span_start", failure)
        return
    if error is not None:
        count("budget.hard_stops")
        raise error


def _call_cost(model: str | None, input_tokens: int, output_tokens: int) -> float | None:
    """What one call cost, or None if its model has no price (or the price table is broken)."""
    global _prices
    settings = get_settings()
    cached = _prices
    if cached is None or cached[0] is not settings:
        # Re-resolved only when the settings object changes (reload_settings): comparing the
        # price file's Path on every call would cost more than the whole budget check.
        try:
            table = get_price_table()
        except Exception as error:
            report_error("budget.prices", error)
            table = None
        cached = _prices = (settings, table.models if table is not None else {})
    price = cached[1].get(model) if model else None
    return price.cost(input_tokens, output_tokens) if price is not None else None


def live_budget_count() -> int:
    """How many budgeted runs are live (for tests and doctor)."""
    with _lock:
        return len(_live)
