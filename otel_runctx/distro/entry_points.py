"""Zero-code setup: the entry points ``opentelemetry-instrument`` loads.

``opentelemetry-instrument`` runs, in order: the distro (one), the configurator (one), the
``opentelemetry_pre_instrument`` hooks, the instrumentors, then the app. otel-runctx plugs into
three of those steps:

* :class:`RunContextDistro` (``OTEL_PYTHON_DISTRO=runctx``) sets env defaults like the stock
  distro and installs the run propagator when the user did not choose propagators.
* :class:`RunContextConfigurator` (``OTEL_PYTHON_CONFIGURATOR=runctx``) builds the SDK from
  ``OTEL_*`` env like the stock one, with our processors placed before the exporters.
* after the SDK is built, :func:`~otel_runctx.distro.outcome_wiring.wire_outcome_delivery`
  makes outcome delivery durable and sent once.
* :func:`pre_instrument` is the safety net for every other setup (another vendor's
  configurator, ``OTEL_CONFIG_FILE``): it attaches our processors to whatever SDK providers are
  global, unless they are already there.

Besides :mod:`otel_runctx.settings`, this is the one module that reads ``os.environ``: the
OpenTelemetry variables it sets defaults for belong to the SDK, not to otel-runctx.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any
from urllib.parse import quote

from opentelemetry._logs import get_logger_provider
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import get_tracer_provider

from otel_runctx.distro.attach import (
    attach_to_logger_provider,
    attach_to_tracer_provider,
    build_log_processors,
    build_span_processors,
    install_propagator,
)
from otel_runctx.distro.defaults import local_defaults, logging_defaults
from otel_runctx.distro.outcome_wiring import wire_outcome_delivery
from otel_runctx.distro.shutdown import install_shutdown_flush
from otel_runctx.instrumentation.processes import adopt_process_carrier
from otel_runctx.settings import (
    ConfigError,
    reload_settings,
    resource_environment_default,
    unknown_runctx_variables,
)
from otel_runctx.stats import report_error
from otel_runctx.usage.prices import get_price_table

__all__ = [
    "RunContextConfigurator",
    "RunContextDistro",
    "apply_env_defaults",
    "configure_sdk_from_env",
    "ensure_attached",
    "ensure_propagator",
    "pre_instrument",
    "user_chose_propagators",
    "validate_configuration",
    "validate_or_exit",
]

_logger = logging.getLogger("otel_runctx")

#: Defaults the distro sets when the user has not: the same choices as the stock distro.
DISTRO_DEFAULTS = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
}


#: Exit status when ``opentelemetry-instrument`` stops the process for bad configuration.
CONFIG_ERROR_EXIT_STATUS = 78  # EX_CONFIG (sysexits.h)

_validated = False


def validate_configuration() -> None:
    """Read every ``OTEL_RUNCTX_*`` setting now; raise ConfigError if one is unusable.

    Unknown ``OTEL_RUNCTX_*`` names get one warning each, with the closest known name. The price
    file is read here too, so a broken one is a startup error rather than a first-run surprise.
    """
    global _validated
    reload_settings()
    get_price_table()
    _validated = True
    for name, closest in unknown_runctx_variables(os.environ):
        hint = f"; did you mean {closest}?" if closest else ""
        _logger.warning("otel-runctx: %s is not a setting otel-runctx knows%s", name, hint)


def validate_or_exit() -> None:
    """:func:`validate_configuration`, and on ConfigError stop the process before the app runs.

    Runs inside ``opentelemetry-instrument``'s start-up (sitecustomize), which catches every
    ``Exception`` and carries on, and where ``SystemExit`` becomes a "Fatal Python error" with a
    traceback. So the one message goes to stderr and the process leaves through ``os._exit``:
    nothing of the app has run yet, so there is nothing for atexit to do.
    """
    if _validated:
        return
    try:
        validate_configuration()
    except ConfigError as error:
        try:
            sys.stderr.write(
                f"otel-runctx: invalid configuration, the application was not started: {error}\n"
            )
            sys.stderr.flush()
        finally:
            os._exit(CONFIG_ERROR_EXIT_STATUS)


def apply_env_defaults(*, logging_handler: bool = False) -> None:
    """Set :data:`DISTRO_DEFAULTS` for every variable the user left unset, and put
    ``OTEL_RUNCTX_ENVIRONMENT`` on the resource when the resource names no environment.

    Local mode's exporters come first (see :mod:`otel_runctx.distro.defaults`); with
    ``logging_handler`` (the distro, not ``configure()``) stdlib logging is exported by default.
    """
    chosen = dict(local_defaults(os.environ))
    if logging_handler:
        chosen.update(logging_defaults(os.environ))
    for name, value in {**DISTRO_DEFAULTS, **chosen}.items():
        os.environ.setdefault(name, value)
    environment = resource_environment_default()
    if environment is not None:
        current = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip().rstrip(",")
        member = f"deployment.environment.name={quote(environment, safe='')}"
        os.environ["OTEL_RESOURCE_ATTRIBUTES"] = f"{current},{member}" if current else member


def user_chose_propagators() -> bool:
    """True when ``OTEL_PROPAGATORS`` or ``OTEL_CONFIG_FILE`` is set: the user's choice stands.

    Declarative configuration always sets the global propagator, to exactly what its
    ``propagator`` section lists (an empty, no-op composite when there is none), so with a
    config file the file is the user's choice.
    """
    return any(
        os.environ.get(name, "").strip() for name in ("OTEL_PROPAGATORS", "OTEL_CONFIG_FILE")
    )


def ensure_propagator() -> bool:
    """Install tracecontext + the run propagator globally, unless the user chose propagators.

    A distro cannot do this through ``OTEL_PROPAGATORS``: ``opentelemetry.propagate`` reads that
    variable when it is first imported, which happens before any distro runs.
    """
    if user_chose_propagators():
        return False
    return install_propagator()


def ensure_attached() -> dict[str, Any]:
    """Attach our processors to the global SDK providers that lack them; report what happened.

    A provider that is not the SDK's (the no-op proxy before any setup, or a vendor's own
    class) is left alone: there is nothing we could attach to.
    """
    done: dict[str, Any] = {}
    tracer_provider = get_tracer_provider()
    if isinstance(tracer_provider, TracerProvider):
        done["tracer_provider"] = attach_to_tracer_provider(tracer_provider)
    logger_provider = get_logger_provider()
    if isinstance(logger_provider, LoggerProvider):
        done["logger_provider"] = attach_to_logger_provider(logger_provider)
    return done


class RunContextDistro(BaseDistro):  # type: ignore[misc]
    """``opentelemetry_distro: runctx``: OTLP by default, run propagation on by default."""

    def _configure(self, **kwargs: Any) -> None:
        validate_or_exit()
        apply_env_defaults(logging_handler=True)
        try:
            ensure_propagator()
        except Exception as error:
            report_error("auto.distro", error)


class RunContextConfigurator(_OTelSDKConfigurator):
    """``opentelemetry_configurator: runctx``: the stock SDK setup plus our processors.

    The SDK adds ``span_processors`` / ``log_record_processors`` before the exporting
    processors built from ``OTEL_*_EXPORTER``, so exporters see stamped data. With
    ``OTEL_CONFIG_FILE`` the SDK ignores these keyword arguments, so there we attach afterwards.
    """

    def _configure(self, **kwargs: Any) -> None:
        validate_or_exit()
        if os.environ.get("OTEL_CONFIG_FILE", "").strip():
            super()._configure(**kwargs)  # type: ignore[no-untyped-call]
            try:
                ensure_attached()
            except Exception as error:
                report_error("auto.configurator", error)
            wire_outcome_delivery()
            return
        kwargs["span_processors"] = [*kwargs.get("span_processors", ()), *build_span_processors()]
        kwargs["log_record_processors"] = [
            *kwargs.get("log_record_processors", ()),
            *build_log_processors(),
        ]
        super()._configure(**kwargs)  # type: ignore[no-untyped-call]
        # Durable, sent-once outcome delivery is the default (OTEL_RUNCTX_OUTCOME_SPOOL=off
        # opts out); it needs the exporters the SDK just built, so it comes after them.
        wire_outcome_delivery()


def configure_sdk_from_env() -> None:
    """Build the SDK providers from ``OTEL_*`` env, as ``opentelemetry-instrument`` would."""
    RunContextConfigurator().configure()  # type: ignore[no-untyped-call]


def pre_instrument() -> None:
    """``opentelemetry_pre_instrument: runctx``: attach to the global providers if missing.

    Runs after whichever configurator was chosen. Without it, a setup where another vendor's
    configurator or ``OTEL_CONFIG_FILE`` built the SDK stamps no span at all. Never raises:
    an exception here would stop ``opentelemetry-instrument`` from instrumenting the app.
    """
    validate_or_exit()
    try:
        done = ensure_attached()
        ensure_propagator()
        install_shutdown_flush()
        adopt_process_carrier(os.environ)
        for name, result in done.items():
            if result.added:
                _logger.debug("otel-runctx attached %s to the global %s", result.added, name)
    except Exception as error:
        report_error("auto.pre_instrument", error)
