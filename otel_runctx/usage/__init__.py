"""Usage: the per-run roll-up of spans, errors and LLM tokens, and the prices that turn tokens into
cost, and the live spend of budgeted runs (``spend``, fed by the roll-up). Imports only the run
model, settings and stats; outcomes read the roll-up from here."""

from otel_runctx.usage.rollup import RunUsage, UsageRollupProcessor

__all__ = ["RunUsage", "UsageRollupProcessor"]
