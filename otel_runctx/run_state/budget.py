"""Run budgets: the limits a run may spend (``Budget``) and its live spend (``RunBudget``).

``Budget`` is the immutable value users pass to ``run(..., budget=...)`` and get back from
``RunContext.remaining_budget()``. ``RunBudget`` is the live side: one per run that has a budget,
shared by every copy of the run, adding up its own usage and its child runs' (each child's usage
is added to the child and to every budgeted ancestor). The first limit a run reaches cancels it
with reason ``budget:<limit>``. The usage itself is fed in by the usage roll-up
(:mod:`otel_runctx.usage.spend`); this module only does the arithmetic and imports nothing else
of otel_runctx.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from opentelemetry.util.types import AttributeValue

__all__ = ["LIMITS", "Budget", "BudgetExceeded", "Enforce", "RunBudget"]

Enforce = Literal["cancel", "raise"]
#: The limits a budget can set, in the order ``RunBudget`` keeps them.
LIMITS = ("cost", "input_tokens", "output_tokens", "llm_calls")
_COST, _INPUT, _OUTPUT, _CALLS = range(4)


@dataclass(frozen=True, slots=True)
class Budget:
    """What a run may spend: any of ``cost`` (in the price table's currency), ``input_tokens``,
    ``output_tokens`` and ``llm_calls``; ``None`` means no limit on that one.

    ``share`` is for child runs: the fraction (0 < share <= 1) of the parent's remaining budget
    the child gets for every limit it does not set itself; a child run given no budget gets a
    share of 1. ``enforce="cancel"`` (default) cancels the run when a limit is reached;
    ``enforce="raise"`` also makes the next span started in the run raise :class:`BudgetExceeded`.
    """

    cost: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    llm_calls: int | None = None
    share: float | None = None
    enforce: Enforce = "cancel"

    def __post_init__(self) -> None:
        if self.cost is not None:
            if isinstance(self.cost, bool) or not isinstance(self.cost, (int, float)):
                raise ValueError(f"Budget(cost=...) must be a number, got {self.cost!r}")
            if not math.isfinite(self.cost) or self.cost < 0:
                raise ValueError(f"Budget(cost=...) must be finite and >= 0, got {self.cost!r}")
        for name in LIMITS[1:]:
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"Budget({name}=...) must be an integer >= 0, got {value!r}")
        if self.share is not None and (
            isinstance(self.share, bool)
            or not isinstance(self.share, (int, float))
            or not 0 < self.share <= 1
        ):
            raise ValueError(f"Budget(share=...) must be in (0, 1], got {self.share!r}")
        if self.enforce not in ("cancel", "raise"):
            raise ValueError(
                f"Budget(enforce=...) must be 'cancel' or 'raise', got {self.enforce!r}"
            )

    @property
    def has_limits(self) -> bool:
        """True if any of the four limits is set (a share alone sets none)."""
        return any(getattr(self, name) is not None for name in LIMITS)

    def limits(self) -> tuple[float | None, ...]:
        """The four limits in :data:`LIMITS` order."""
        return (self.cost, self.input_tokens, self.output_tokens, self.llm_calls)


class BudgetExceeded(RuntimeError):
    """Raised when a span is started in a run whose ``enforce="raise"`` budget is used up.

    The one exception otel-runctx raises into instrumented code on purpose: the user asked for a
    hard stop. ``limit`` names the limit that was reached; ``usage`` is the spend at that moment.
    """

    def __init__(self, run_id: str, limit: str, usage: Mapping[str, float]) -> None:
        self.run_id = run_id
        self.limit = limit
        self.usage = dict(usage)
        spent = ", ".join(f"{name}={value:g}" for name, value in self.usage.items())
        super().__init__(f"run {run_id} reached its {limit} budget ({spent})")


class RunBudget:
    """The live budget of one run: its limits, its spend (own and child runs'), and whether a
    limit was reached. Thread-safe; one lock per tree of runs (a child shares its root's lock)."""

    __slots__ = (
        "_cancel",
        "_checks",
        "_lock",
        "enforce",
        "exceeded",
        "exceeded_usage",
        "limits",
        "needs_cost",
        "parent",
        "run_id",
        "spent",
    )

    def __init__(
        self,
        run_id: str,
        budget: Budget,
        cancel: Callable[[str], None],
        parent: RunBudget | None = None,
    ) -> None:
        self.run_id = run_id
        self.parent = parent
        self._lock: threading.Lock = parent._lock if parent is not None else threading.Lock()
        self._cancel = cancel
        self.enforce: Enforce = budget.enforce
        limits: list[float | None] = list(budget.limits())
        if parent is not None:
            # Every limit the child does not set: a share of what the parent has left.
            share = budget.share if budget.share is not None else 1.0
            for index, left in enumerate(parent.remaining_limits()):
                if limits[index] is None and left is not None:
                    value = left * share
                    limits[index] = value if index == _COST else math.floor(value)
        self.limits: tuple[float | None, ...] = tuple(limits)
        # (index, limit) of the limits that are set: what add() compares, nothing more.
        self._checks = tuple((i, limit) for i, limit in enumerate(limits) if limit is not None)
        #: True if this run or a budgeted ancestor limits cost (so its calls must be priced).
        self.needs_cost: bool = limits[_COST] is not None or (
            parent is not None and parent.needs_cost
        )
        self.spent: list[float] = [0.0, 0, 0, 0]
        self.exceeded: str | None = None
        self.exceeded_usage: tuple[float, ...] | None = None

    def add(self, cost: float, input_tokens: int, output_tokens: int) -> list[RunBudget]:
        """Add one LLM call to this run and its ancestors; cancel every run that reaches a limit
        now. Returns the budgets that were crossed by this call (for hard-stop bookkeeping)."""
        crossed: list[RunBudget] = []
        with self._lock:
            node: RunBudget | None = self
            while node is not None:
                spent = node.spent
                spent[_COST] += cost
                spent[_INPUT] += input_tokens
                spent[_OUTPUT] += output_tokens
                spent[_CALLS] += 1
                if node.exceeded is None:
                    for index, limit in node._checks:
                        if spent[index] >= limit:
                            node.exceeded = LIMITS[index]
                            node.exceeded_usage = tuple(spent)
                            crossed.append(node)
                            break
                node = node.parent
        for node in crossed:
            node._cancel(f"budget:{node.exceeded}")
        return crossed

    def remaining_limits(self) -> list[float | None]:
        """Per limit, what is left here and in every budgeted ancestor (the smallest), >= 0."""
        left: list[float | None] = [None, None, None, None]
        with self._lock:
            node: RunBudget | None = self
            while node is not None:
                for index, (limit, used) in enumerate(zip(node.limits, node.spent, strict=True)):
                    if limit is not None:
                        value = max(limit - used, 0)
                        current = left[index]
                        left[index] = value if current is None else min(current, value)
                node = node.parent
        return left

    def remaining(self) -> Budget:
        """A :class:`Budget` of what this run may still spend."""
        cost, tokens_in, tokens_out, calls = self.remaining_limits()
        return Budget(
            cost=None if cost is None else float(cost),
            input_tokens=None if tokens_in is None else int(tokens_in),
            output_tokens=None if tokens_out is None else int(tokens_out),
            llm_calls=None if calls is None else int(calls),
            enforce=self.enforce,
        )

    def hard_stop(self) -> BudgetExceeded | None:
        """The error to raise at span start if this run or an ancestor has a used-up
        ``enforce="raise"`` budget; None otherwise."""
        node: RunBudget | None = self
        while node is not None:
            if node.exceeded is not None and node.enforce == "raise":
                return BudgetExceeded(node.run_id, node.exceeded, node._usage_at_crossing())
            node = node.parent
        return None

    def _usage_at_crossing(self) -> dict[str, float]:
        usage = self.exceeded_usage or tuple(self.spent)
        return dict(zip(LIMITS, usage, strict=True))

    def to_attributes(self) -> dict[str, AttributeValue]:
        """``runctx.budget.*`` for the run's outcome: limits, spend (own and child runs'), and
        the limit reached with the spend at that moment, if any. Cost is only tracked (and so
        only reported) when this run or an ancestor limits it."""
        with self._lock:
            spent = tuple(self.spent)
        names = LIMITS if self.needs_cost else LIMITS[1:]
        attributes: dict[str, AttributeValue] = {}
        for name, limit, used in zip(LIMITS, self.limits, spent, strict=True):
            if limit is not None:
                attributes[f"runctx.budget.limit.{name}"] = limit
            if name in names:
                attributes[f"runctx.budget.spent.{name}"] = used
        if self.exceeded is not None:
            attributes["runctx.budget.exceeded"] = self.exceeded
            for name, used in self._usage_at_crossing().items():
                if name in names:
                    attributes[f"runctx.budget.exceeded_usage.{name}"] = used
        return attributes
