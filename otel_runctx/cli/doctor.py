"""``otel-runctx doctor``: is otel-runctx wired into *this* process's OpenTelemetry setup?

It inspects the live global providers, so run it the way the app runs:
``opentelemetry-instrument otel-runctx doctor`` checks the zero-code setup (auto-instrumentation
has configured everything before the doctor's code runs); ``otel-runctx doctor --configure``
checks what ``configure()`` would do with the current ``OTEL_*`` env. Each finding has a level
(``ok``, ``warn``, ``problem``) and, for anything not ok, the concrete fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider

from otel_runctx import stats
from otel_runctx.cli import probes
from otel_runctx.distro.attach import (
    is_placeholder,
    log_processors_of,
    propagator_names,
    span_processors_of,
)
from otel_runctx.instrumentation import ExecutorContextInstrumentor
from otel_runctx.outcomes.active import get_active_delivery
from otel_runctx.propagation import RunContextPropagator
from otel_runctx.sampling import coverage_of, provider_sampler
from otel_runctx.settings import ConfigError, load_settings, otel_variables, process_environment

__all__ = ["Diagnosis", "Finding", "check_sampler_usage", "diagnose"]

Level = Literal["ok", "warn", "problem"]

FIX_NO_PROVIDER = (
    "run the app under `opentelemetry-instrument` (with otel-runctx installed in the same "
    "environment), or call `otel_runctx.configure()` once at startup"
)
FIX_MISSING_SPAN_PROCESSOR = (
    "call `otel_runctx.configure()` after your own OpenTelemetry setup, or "
    "`provider.add_span_processor(RunContextSpanProcessor())` before your exporting processor; "
    "under opentelemetry-instrument check that otel-runctx is installed in the app's environment "
    "(its pre-instrument hook adds the processor)"
)


@dataclass(frozen=True, slots=True)
class Finding:
    """One check: what was seen and, when it is not ok, how to fix it."""

    level: Level
    check: str
    detail: str
    fix: str | None = None


@dataclass
class Diagnosis:
    """Every finding plus the effective settings."""

    findings: list[Finding] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    otel_env: dict[str, str] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    spool: dict[str, Any] | None = None

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "problem"]

    def add(self, level: Level, check: str, detail: str, fix: str | None = None) -> None:
        self.findings.append(Finding(level, check, detail, fix))

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not self.problems,
            "findings": [
                {"level": f.level, "check": f.check, "detail": f.detail, "fix": f.fix}
                for f in self.findings
            ],
            "settings": self.settings,
            "otel_env": self.otel_env,
            "counters": self.counters,
            "spool": self.spool,
        }


def diagnose() -> Diagnosis:
    """Inspect the process's global OpenTelemetry setup and otel-runctx's settings."""
    diagnosis = Diagnosis(otel_env=otel_variables(), counters=stats.snapshot())
    _check_settings(diagnosis)
    _check_tracer_provider(diagnosis)
    _check_logger_provider(diagnosis)
    _check_propagators(diagnosis)
    _check_thread_carrier(diagnosis)
    _check_spool(diagnosis)
    _probe(diagnosis)
    check_sampler_usage(diagnosis)
    errors = {k: v for k, v in diagnosis.counters.items() if k.startswith("errors.")}
    if errors:
        diagnosis.add(
            "warn",
            "internal errors",
            ", ".join(f"{k}={v}" for k, v in sorted(errors.items())),
            "see the otel_runctx logger's warnings for the first occurrence of each",
        )
    return diagnosis


def _probe(diagnosis: Diagnosis) -> None:
    """The checks beyond the providers (see :mod:`otel_runctx.cli.probes`); never raise."""
    environ = process_environment()
    for check in (
        probes.check_unknown_variables,
        probes.check_endpoints,
        probes.check_instrumentations,
        probes.check_log_export,
        probes.check_spool_backlog,
    ):
        try:
            check(diagnosis, environ)
        except Exception as error:
            diagnosis.add("warn", check.__name__.removeprefix("check_"), f"check failed: {error}")


def _check_settings(diagnosis: Diagnosis) -> None:
    try:
        settings = load_settings()
    except ConfigError as error:
        diagnosis.add("problem", "settings", str(error), "fix the variable named above")
        return
    diagnosis.settings = {
        name: _redacted(name, getattr(settings, name)) for name in settings.__dataclass_fields__
    }
    diagnosis.add("ok", "settings", "every OTEL_RUNCTX_* variable parses")


_SECRET_SETTING_MARKERS = ("key", "secret", "token", "password")


def _redacted(name: str, value: Any) -> Any:
    """Settings that hold secrets (signing keys) are shown only as how many are set."""
    if not any(marker in name.lower() for marker in _SECRET_SETTING_MARKERS):
        return value
    if not value:
        return "(none)"
    size = len(value) if isinstance(value, tuple | list | dict) else 1
    return f"<{size} set, redacted>"


def _check_tracer_provider(diagnosis: Diagnosis) -> None:
    provider = trace.get_tracer_provider()
    kind = f"{type(provider).__module__}.{type(provider).__qualname__}"
    if is_placeholder(provider):
        diagnosis.add(
            "problem", "tracer provider", f"no SDK TracerProvider is set ({kind})", FIX_NO_PROVIDER
        )
        return
    if not isinstance(provider, TracerProvider):
        diagnosis.add(
            "problem",
            "tracer provider",
            f"{kind} is not the OpenTelemetry SDK's",
            "otel-runctx attaches to opentelemetry-sdk providers only",
        )
        return
    processors = span_processors_of(provider)
    _check_processors(
        diagnosis,
        "span processors",
        processors,
        "RunContextSpanProcessor",
        FIX_MISSING_SPAN_PROCESSOR,
        "OTEL_TRACES_EXPORTER",
    )


def _check_logger_provider(diagnosis: Diagnosis) -> None:
    provider = get_logger_provider()
    if is_placeholder(provider):
        diagnosis.add(
            "warn",
            "logger provider",
            "no SDK LoggerProvider: log records and outcome events are not exported",
            "set OTEL_LOGS_EXPORTER (e.g. otlp) under opentelemetry-instrument, "
            "or call `otel_runctx.configure()`",
        )
        return
    if not isinstance(provider, LoggerProvider):
        diagnosis.add("warn", "logger provider", f"{type(provider).__name__} is not the SDK's")
        return
    _check_processors(
        diagnosis,
        "log record processors",
        log_processors_of(provider),
        "RunContextLogProcessor",
        "call `otel_runctx.configure()` after your logging setup",
        "OTEL_LOGS_EXPORTER",
    )


def _check_processors(
    diagnosis: Diagnosis,
    check: str,
    processors: tuple[Any, ...] | None,
    ours: str,
    fix: str,
    exporter_variable: str,
) -> None:
    if processors is None:
        diagnosis.add("warn", check, "the provider's processor list cannot be inspected")
        return
    names = [type(p).__name__ for p in processors]
    listing = " -> ".join(names) or "(none)"
    if ours not in names:
        diagnosis.add("problem", check, f"{ours} is missing: {listing}", fix)
    elif names[0] != ours:
        diagnosis.add(
            "warn",
            check,
            f"{ours} is not first: {listing}",
            "processors before it run on unstamped data; `configure()` puts it first",
        )
    else:
        diagnosis.add("ok", check, listing)
    if not any(n not in (ours, "UsageRollupProcessor") for n in names):
        diagnosis.add(
            "warn",
            check,
            "no exporting processor: nothing leaves the process",
            f"set {exporter_variable} (otlp, console or runctx_jsonl)",
        )


def _check_propagators(diagnosis: Diagnosis) -> None:
    names = propagator_names()
    listing = ", ".join(names) or "(none: nothing is propagated)"
    ours = RunContextPropagator.__name__
    if ours not in names:
        diagnosis.add(
            "warn",
            "propagators",
            f"{listing}: runs do not cross service boundaries",
            "set OTEL_PROPAGATORS=tracecontext,runctx (or unset it)",
        )
    elif "W3CBaggagePropagator" in names:
        diagnosis.add(
            "problem",
            "propagators",
            f"{listing}: both write the `baggage` header and the last one wins",
            "use OTEL_PROPAGATORS=tracecontext,runctx (runctx replaces baggage)",
        )
    else:
        diagnosis.add("ok", "propagators", listing)


def _check_thread_carrier(diagnosis: Diagnosis) -> None:
    """Whether thread-pool jobs and new threads carry the submitting run."""
    try:
        enabled = bool(ExecutorContextInstrumentor().is_instrumented_by_opentelemetry)
    except Exception as error:
        diagnosis.add("warn", "threads", f"could not ask the executor instrumentor: {error}")
        return
    if enabled:
        diagnosis.add("ok", "threads", "ThreadPoolExecutor jobs and new threads carry the run")
    else:
        diagnosis.add(
            "warn",
            "threads",
            "ThreadPoolExecutor jobs and new threads start without the submitter's run",
            "run under opentelemetry-instrument (it loads runctx_executors), call "
            "`ExecutorContextInstrumentor().instrument()`, or use "
            "`otel_runctx.isolation.ContextPoolExecutor`",
        )


def _check_spool(diagnosis: Diagnosis) -> None:
    """Report outcome delivery: durable (the spool), degraded to direct sending, or off."""
    try:
        delivery = get_active_delivery()
        if delivery is None:
            diagnosis.add(
                "ok",
                "outcome spool",
                "not running (OTEL_RUNCTX_OUTCOME_SPOOL=off, or no OTLP log exporter, or the "
                "SDK was not set up by otel-runctx): outcome events go out like other log "
                "records, best effort",
            )
            return
        if delivery.spool is None:
            diagnosis.spool = {"path": str(delivery.path), "degraded": delivery.degraded_reason}
            diagnosis.add(
                "warn",
                "outcome spool",
                f"degraded: outcomes are sent directly, best effort ({delivery.degraded_reason})",
                "fix the spool location, or set OTEL_RUNCTX_OUTCOME_SPOOL=off to accept "
                "best-effort delivery",
            )
            return
        spool = delivery.spool
        diagnosis.spool = {
            name: str(getattr(spool, name))
            for name in ("path", "intake_directory", "max_bytes", "owner")
            if hasattr(spool, name)
        }
    except Exception as error:
        diagnosis.add("warn", "outcome spool", f"could not read its status: {error}")
        return
    diagnosis.add("ok", "outcome spool", ", ".join(f"{k}={v}" for k, v in diagnosis.spool.items()))


FIX_UNDERCOUNTING_SAMPLER = (
    "set OTEL_TRACES_SAMPLER=runctx_ratio and OTEL_TRACES_SAMPLER_ARG=<probability> (keeps or "
    "drops whole runs, and still counts the tokens of dropped ones), or keep every span"
)


def check_sampler_usage(diagnosis: Diagnosis) -> None:
    """Issue 10: warn when the tracer provider's sampler makes outcomes undercount cost.

    A sampler that DROPs spans hides them from the usage roll-up, so runctx.usage.* (tokens,
    cost) on outcomes miss the dropped spans' share, and runctx.usage.complete is false.
    """
    try:
        sampler = provider_sampler()
        if sampler is None:
            return  # no SDK tracer provider: _check_tracer_provider reports that
        coverage = coverage_of(sampler)
        name = sampler.get_description()
    except Exception as error:
        diagnosis.add("warn", "sampler", f"could not inspect the sampler: {error}")
        return
    if coverage.complete:
        probability = coverage.probability
        kept = "every run" if probability == 1.0 else f"{probability:.4g} of runs, whole"
        diagnosis.add(
            "ok", "sampler", f"{name}: exports {kept}; usage on outcomes counts every LLM span"
        )
        return
    diagnosis.add(
        "warn",
        "sampler",
        f"{name} drops spans before any processor sees them: tokens and cost on outcomes are "
        "undercounted for runs it samples out (runctx.usage.complete=false)",
        FIX_UNDERCOUNTING_SAMPLER,
    )
