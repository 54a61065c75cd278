"""SDK processors that stamp the active run onto spans and log records."""

from otel_runctx.processors.logs import RunContextLogProcessor
from otel_runctx.processors.span import RunContextSpanProcessor
from otel_runctx.processors.usage import UsageRollupProcessor

__all__ = ["RunContextLogProcessor", "RunContextSpanProcessor", "UsageRollupProcessor"]
