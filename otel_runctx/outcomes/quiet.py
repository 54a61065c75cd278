"""Running our own background sends outside any run and with instrumentation suppressed.

The spool's OTLP exports would otherwise be traced by the ``requests`` / ``urllib3`` / ``grpc``
instrumentations (spans about our own delivery, stamped with whatever run was current), and
those spans would feed the pipeline again. The OTel context is thread-local, so attaching an
empty context that carries only the suppression keys at the start of each of our threads is
enough for everything that thread does.
"""

from __future__ import annotations

from opentelemetry import context

__all__ = ["quiet_context"]


def quiet_context() -> context.Context:
    """An empty context (no span, no run) with OTel instrumentation suppressed."""
    quiet = context.set_value(context._SUPPRESS_INSTRUMENTATION_KEY, True, context.Context())
    return context.set_value(context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, quiet)
