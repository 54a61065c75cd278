"""Per-run state beside the immutable RunContext: a run's spending limits (``budget``: Budget,
BudgetExceeded and the live RunBudget) and its per-run values (``local``: RunLocal). Both live in
the holder every copy of a run shares; ``budget`` imports nothing of ours, ``local`` only the
run model. Empty on purpose, so ``context`` can import ``budget`` without a cycle."""
