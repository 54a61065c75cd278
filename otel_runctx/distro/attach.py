"""Attach otel-runctx's processors and propagator to SDK providers that already exist.

Shared by the zero-code hooks (:mod:`otel_runctx.distro.entry_points`) and
:func:`otel_runctx.configure`.
Attaching is idempotent: a provider that already holds a ``RunContextSpanProcessor`` (added by our
configurator, by ``configure()``, or by hand) is left alone, so no span is stamped twice.

Our processors go to the *front* of the provider's pipeline. For log records this is required:
a ``SimpleLogRecordProcessor`` registered earlier exports the record in ``on_emit`` before a
processor behind it could stamp it. The SDK has no public "insert first" call, so this is the
one place that touches SDK internals (``_active_span_processor._span_processors`` and
``_multi_log_record_processor._log_record_processors``); when they are not there (another SDK
version, another provider class), it falls back to the public ``add_*_processor`` and says so.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import propagate
from opentelemetry._logs import NoOpLoggerProvider
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_runctx.exporters import _fast_encode
from otel_runctx.processors import RunContextLogProcessor, RunContextSpanProcessor
from otel_runctx.propagation import RunContextPropagator
from otel_runctx.stats import count, report_error
from otel_runctx.usage import UsageRollupProcessor

__all__ = [
    "AttachResult",
    "attach_to_logger_provider",
    "attach_to_tracer_provider",
    "build_log_processors",
    "build_propagator",
    "build_span_processors",
    "install_propagator",
    "is_placeholder",
    "log_processors_of",
    "propagator_names",
    "span_processors_of",
]


_lock = threading.Lock()


def _placeholder_types() -> tuple[type, ...]:
    types: list[type] = [ProxyTracerProvider, NoOpTracerProvider, NoOpLoggerProvider]
    try:  # the API's proxy logger provider is not public; other API versions may lack it
        from opentelemetry._logs._internal import ProxyLoggerProvider

        types.append(ProxyLoggerProvider)
    except ImportError:
        pass
    return tuple(types)


def is_placeholder(provider: object) -> bool:
    """True for the API's proxy / no-op providers: nothing has been set up yet."""
    return isinstance(provider, _placeholder_types())


@dataclass(frozen=True, slots=True)
class AttachResult:
    """What attaching to one provider did."""

    added: tuple[str, ...] = ()
    already_present: bool = False
    #: True when SDK internals were unavailable and processors were appended at the end instead.
    appended_at_end: bool = False


def build_span_processors() -> list[SpanProcessor]:
    """Fresh instances of every otel-runctx span processor, stamping first, then the roll-up.

    Also switches on the guarded OTLP encoding of run attributes (exporters/_fast_encode.py).
    """
    _fast_encode.install()
    processors: list[SpanProcessor] = [RunContextSpanProcessor()]
    try:
        processors.append(UsageRollupProcessor())
    except Exception as error:
        report_error("attach.usage_processor", error)
    return processors


def build_log_processors() -> list[LogRecordProcessor]:
    """Fresh instances of every otel-runctx log record processor."""
    return [RunContextLogProcessor()]


def span_processors_of(provider: object) -> tuple[SpanProcessor, ...] | None:
    """The span processors registered on an SDK provider, or ``None`` if they cannot be seen."""
    multi = getattr(provider, "_active_span_processor", None)
    found = getattr(multi, "_span_processors", None)
    return found if isinstance(found, tuple) else None


def log_processors_of(provider: object) -> tuple[LogRecordProcessor, ...] | None:
    """The log record processors registered on an SDK provider, or ``None`` if not visible."""
    multi = getattr(provider, "_multi_log_record_processor", None)
    found = getattr(multi, "_log_record_processors", None)
    return found if isinstance(found, tuple) else None


# Providers we attached to through the public fallback, where the processor list is not visible.
_attached_blind: weakref.WeakSet[object] = weakref.WeakSet()


def attach_to_tracer_provider(provider: TracerProvider) -> AttachResult:
    """Put our span processors first on ``provider`` unless a RunContextSpanProcessor is there."""
    with _lock:
        current = span_processors_of(provider)
        if current is None:
            if provider in _attached_blind:
                return AttachResult(already_present=True)
            _attached_blind.add(provider)
        elif any(isinstance(p, RunContextSpanProcessor) for p in current):
            return AttachResult(already_present=True)
        processors = build_span_processors()
        front = current is not None and _prepend(
            getattr(provider, "_active_span_processor", None), "_span_processors", processors
        )
        if not front:
            for processor in processors:
                provider.add_span_processor(processor)
        count("attach.tracer_provider")
        return AttachResult(added=_names(processors), appended_at_end=not front)


def attach_to_logger_provider(provider: LoggerProvider) -> AttachResult:
    """Put our log record processors first on ``provider`` unless one is already there."""
    with _lock:
        current = log_processors_of(provider)
        if current is None:
            if provider in _attached_blind:
                return AttachResult(already_present=True)
            _attached_blind.add(provider)
        elif any(isinstance(p, RunContextLogProcessor) for p in current):
            return AttachResult(already_present=True)
        processors = build_log_processors()
        front = current is not None and _prepend(
            getattr(provider, "_multi_log_record_processor", None),
            "_log_record_processors",
            processors,
        )
        if not front:
            for processor in processors:
                provider.add_log_record_processor(processor)
        count("attach.logger_provider")
        return AttachResult(added=_names(processors), appended_at_end=not front)


def _prepend(multi: object, attribute: str, processors: Sequence[object]) -> bool:
    """Insert ``processors`` before the existing ones, under the SDK's own lock."""
    lock = getattr(multi, "_lock", None)
    if lock is None or not hasattr(lock, "__enter__"):
        return False
    with lock:
        existing = getattr(multi, attribute, None)
        if not isinstance(existing, tuple):
            return False
        setattr(multi, attribute, (*processors, *existing))
    return True


def _names(objects: Sequence[object]) -> tuple[str, ...]:
    return tuple(type(o).__name__ for o in objects)


def build_propagator() -> TextMapPropagator:
    """W3C tracecontext plus our run propagator (W3C baggage if ours cannot be built).

    The run propagator *replaces* ``baggage``: both write the single ``baggage`` header and the
    last writer wins, so having both would drop one of them.
    """
    second: TextMapPropagator = W3CBaggagePropagator()
    try:
        second = RunContextPropagator()
    except Exception as error:
        report_error("attach.run_propagator", error)
    return CompositePropagator([TraceContextTextMapPropagator(), second])


def install_propagator() -> bool:
    """Make :func:`build_propagator` the global propagator; False if already installed.

    Callers decide whether to call this: an explicit ``OTEL_PROPAGATORS`` always wins.
    """
    with _lock:
        current = propagator_names()
        wanted = [type(p).__name__ for p in _members(build_propagator())]
        if current == wanted:
            return False
        propagate.set_global_textmap(build_propagator())
        return True


def propagator_names(propagator: TextMapPropagator | None = None) -> list[str]:
    """Class names of the global (or given) propagator, a composite flattened one level."""
    return [type(p).__name__ for p in _members(propagator or propagate.get_global_textmap())]


def _members(propagator: TextMapPropagator) -> list[TextMapPropagator]:
    inner = getattr(propagator, "_propagators", None)
    if isinstance(propagator, CompositePropagator) and isinstance(inner, list | tuple):
        return list(inner)
    return [propagator]
