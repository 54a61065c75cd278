"""Usage: the per-run roll-up of spans, errors and LLM tokens (from every common token
convention, counted once when spans nest), the prices that turn tokens into cost (a local
table, then genai-prices), and the live spend of budgeted runs (``spend``, fed by the roll-up).
Imports only the run model, settings and stats; outcomes read the roll-up from here."""

from otel_runctx.usage.conventions import LlmUsage, read_llm_usage
from otel_runctx.usage.rollup import RunUsage, UsageRollupProcessor

__all__ = ["LlmUsage", "RunUsage", "UsageRollupProcessor", "read_llm_usage"]
