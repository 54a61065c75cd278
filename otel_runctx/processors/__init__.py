"""SDK processors that stamp the active run onto spans and log records (in ``on_start`` /
``on_emit``). They import only the run model, settings and stats; the usage roll-up lives in
``usage/`` and is re-exported here because it is added to the same provider."""

from otel_runctx.processors.logs import RunContextLogProcessor
from otel_runctx.processors.span import RunContextSpanProcessor
from otel_runctx.usage.rollup import UsageRollupProcessor

__all__ = ["RunContextLogProcessor", "RunContextSpanProcessor", "UsageRollupProcessor"]
