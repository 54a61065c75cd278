"""``configure()``: otel-runctx for apps that set OpenTelemetry up in code.

Apps run under ``opentelemetry-instrument`` need nothing of this: the entry points in
:mod:`otel_runctx.distro.entry_points` do the same work. Everyone else calls ``configure()``
once, after their own OpenTelemetry setup (or instead of it). It never replaces a provider the
app made: it adds our processors to it. Only when there is no SDK provider at all does it build
one, through the same env-driven SDK setup ``opentelemetry-instrument`` uses, so ``OTEL_*``
variables mean the same thing on both paths.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Literal

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from otel_runctx.distro.attach import (
    AttachResult,
    attach_to_logger_provider,
    attach_to_tracer_provider,
    is_placeholder,
    log_processors_of,
    propagator_names,
    span_processors_of,
)
from otel_runctx.distro.outcome_wiring import wire_outcome_delivery

__all__ = ["ConfigureResult", "ProviderAction", "configure"]

#: What ``configure()`` did with one provider.
#: ``attached``: our processors were added to it; ``already``: they were there;
#: ``created``: there was none, one was built from ``OTEL_*``; ``absent``: there was none and
#: ``create_missing=False``; ``foreign``: it is not the SDK's provider, nothing can be added.
ProviderAction = Literal["attached", "already", "created", "absent", "foreign"]

_lock = threading.Lock()
#: Whether the first configure() adopted a run handed over in TRACEPARENT/BAGGAGE (once only).
_adopted: list[bool] = []


@dataclass(frozen=True, slots=True)
class ConfigureResult:
    """What :func:`configure` did; ``str()`` of it is one readable line per item."""

    tracer_provider: ProviderAction
    logger_provider: ProviderAction
    #: ``installed`` / ``already`` / ``kept`` (``OTEL_PROPAGATORS`` is set) / ``skipped``.
    propagator: Literal["installed", "already", "kept", "skipped"]
    span_processors_added: tuple[str, ...] = ()
    log_processors_added: tuple[str, ...] = ()
    propagators: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        """Always true: ``configure()`` either did its work or raised ConfigError."""
        return True

    def __str__(self) -> str:
        return (
            f"tracer provider: {self.tracer_provider} {list(self.span_processors_added)}\n"
            f"logger provider: {self.logger_provider} {list(self.log_processors_added)}\n"
            f"propagator: {self.propagator} {list(self.propagators)}"
        )


def configure(
    *,
    tracer_provider: TracerProvider | None = None,
    logger_provider: LoggerProvider | None = None,
    propagator: bool = True,
    create_missing: bool = True,
) -> ConfigureResult:
    """Attach otel-runctx to the app's providers (default: the global ones); idempotent.

    ``tracer_provider`` / ``logger_provider``: attach to these instead of the global ones.
    ``propagator``: install tracecontext + the run propagator globally unless
    ``OTEL_PROPAGATORS`` is set (the user's choice always wins).
    ``create_missing``: when neither global provider exists, build both (and the meter
    provider) from ``OTEL_*`` env, with the distro's defaults (OTLP) for unset exporters.
    Safe to call more than once and from several threads: processors are added once.

    Raises :class:`otel_runctx.settings.ConfigError` (before touching any provider) when an
    ``OTEL_RUNCTX_*`` value is unusable. Also makes SIGTERM export what is buffered
    (:mod:`otel_runctx.distro.shutdown`), and the first call adopts a run handed over by a
    parent process in ``TRACEPARENT``/``BAGGAGE`` as the inbound run of the calling thread.
    """
    # Imported here: the entry points pull in opentelemetry-instrumentation, needed only now.
    from otel_runctx.distro import entry_points
    from otel_runctx.distro.shutdown import install_shutdown_flush
    from otel_runctx.instrumentation.processes import adopt_process_carrier

    entry_points.validate_configuration()
    install_shutdown_flush()
    with _lock:
        tracer = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        logger = logger_provider if logger_provider is not None else get_logger_provider()
        nothing_yet = is_placeholder(tracer) and is_placeholder(logger)
        if nothing_yet and create_missing:
            entry_points.apply_env_defaults()
            entry_points.configure_sdk_from_env()
            tracer_action, span_added = _created(trace.get_tracer_provider())
            logger_action, log_added = _created(get_logger_provider())
        else:
            tracer_action, span_added = _attach_tracer(tracer)
            logger_action, log_added = _attach_logger(logger)
        # Idempotent; the configurator already did it when the providers were created above.
        wire_outcome_delivery(logger if logger_provider is not None else None)
        if not propagator:
            propagation: Literal["installed", "already", "kept", "skipped"] = "skipped"
        elif entry_points.user_chose_propagators():
            propagation = "kept"
        else:
            propagation = "installed" if entry_points.ensure_propagator() else "already"
        if not _adopted:
            _adopted.append(adopt_process_carrier(os.environ))
        return ConfigureResult(
            tracer_provider=tracer_action,
            logger_provider=logger_action,
            propagator=propagation,
            span_processors_added=span_added,
            log_processors_added=log_added,
            propagators=tuple(propagator_names()),
        )


def _created(provider: object) -> tuple[ProviderAction, tuple[str, ...]]:
    found = span_processors_of(provider) or log_processors_of(provider) or ()
    names = tuple(type(p).__name__ for p in found if type(p).__module__.startswith("otel_runctx"))
    if is_placeholder(provider):
        return "absent", ()
    return ("created" if names else "foreign"), names


def _attach_tracer(provider: object) -> tuple[ProviderAction, tuple[str, ...]]:
    if isinstance(provider, TracerProvider):
        return _action(attach_to_tracer_provider(provider))
    return ("absent" if is_placeholder(provider) else "foreign"), ()


def _attach_logger(provider: object) -> tuple[ProviderAction, tuple[str, ...]]:
    if isinstance(provider, LoggerProvider):
        return _action(attach_to_logger_provider(provider))
    return ("absent" if is_placeholder(provider) else "foreign"), ()


def _action(result: AttachResult) -> tuple[ProviderAction, tuple[str, ...]]:
    return ("already" if result.already_present else "attached"), result.added
