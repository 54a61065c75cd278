"""Opt-in patches that carry the active run (all context) across threads and thread pools.

``ExecutorContextInstrumentor`` is the ``opentelemetry_instrumentor`` entry point
``runctx_executors``. Users who prefer no monkey-patching use
:class:`otel_runctx.isolation.ContextPoolExecutor` instead. Imports only stats; ``isolation``
builds on its job wrapper.
"""

from otel_runctx.instrumentation.executors import ExecutorContextInstrumentor

__all__ = ["ExecutorContextInstrumentor"]
