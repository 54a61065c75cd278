"""SDK processors that stamp the active run onto spans and log records."""

from otel_runctx.processors.logs import RunContextLogProcessor
from otel_runctx.processors.span import RunContextSpanProcessor

__all__ = ["RunContextLogProcessor", "RunContextSpanProcessor"]
