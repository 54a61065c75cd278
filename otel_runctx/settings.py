"""Settings for otel-runctx, read from ``OTEL_RUNCTX_*`` environment variables.

This is the one module that reads the environment. Everything else asks :func:`get_settings`
for a typed, validated :class:`Settings`. An invalid value raises :class:`ConfigError` naming the
variable and what it accepts, so a broken deployment fails at configure time instead of
misbehaving on the hot path.
"""

from __future__ import annotations

import difflib
import math
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from otel_runctx.validation import check_text

PropagationMode = Literal["lean", "full"]
OtlpProtocol = Literal["grpc", "http/protobuf"]
InboundPolicy = Literal["trust", "verify", "ignore"]
SampledOutSpans = Literal["llm", "all"]

ENV_ENVIRONMENT = "OTEL_RUNCTX_ENVIRONMENT"
ENV_PROPAGATION_MODE = "OTEL_RUNCTX_PROPAGATION_MODE"
ENV_INBOUND = "OTEL_RUNCTX_INBOUND"
ENV_SIGNING_KEYS = "OTEL_RUNCTX_SIGNING_KEYS"
ENV_OUTCOME_SPOOL = "OTEL_RUNCTX_OUTCOME_SPOOL"
ENV_OUTCOME_SPOOL_MAX_MB = "OTEL_RUNCTX_OUTCOME_SPOOL_MAX_MB"
ENV_OUTCOME_METRICS_CUSTOMER = "OTEL_RUNCTX_OUTCOME_METRICS_CUSTOMER"
ENV_PRICES = "OTEL_RUNCTX_PRICES"
ENV_JSONL_PATH = "OTEL_RUNCTX_JSONL_PATH"
ENV_STRICT = "OTEL_RUNCTX_STRICT"
ENV_SIGNATURE_MAX_AGE = "OTEL_RUNCTX_SIGNATURE_MAX_AGE"
ENV_SHUTDOWN_TIMEOUT = "OTEL_RUNCTX_SHUTDOWN_TIMEOUT"
ENV_METRICS_SERIES_CAP = "OTEL_RUNCTX_METRICS_SERIES_CAP"
ENV_SPAN_ATTRIBUTES = "OTEL_RUNCTX_SPAN_ATTRIBUTES"
ENV_LOCAL = "OTEL_RUNCTX_LOCAL"
ENV_DEFAULT_BUDGET_COST = "OTEL_RUNCTX_DEFAULT_BUDGET_COST"
ENV_SAMPLED_OUT_SPANS = "OTEL_RUNCTX_SAMPLED_OUT_SPANS"

#: What the run-consistent sampler records of a dropped run (see sampling/sampler.py).
SAMPLED_OUT_SPANS = ("llm", "all")

DEFAULT_ENVIRONMENT = "production"
DEFAULT_JSONL_PATH = "otel-runctx.jsonl"
_RESOURCE_ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")

#: Every run field a span or log record can carry, by its short name (the key is ``runctx.<name>``).
RUN_FIELDS = (
    "run_id",
    "root_run_id",
    "parent_run_id",
    "event_id",
    "customer_id",
    "tenant_id",
    "workflow",
    "environment",
    "attempt",
    "retry_of_run_id",
    "deadline",
)
#: What every span and log record carries by default (``OTEL_RUNCTX_SPAN_ATTRIBUTES=lean``): what
#: per-span queries filter and group by. The rest is on the run's root span and outcome event.
LEAN_SPAN_FIELDS = ("run_id", "event_id", "customer_id", "tenant_id", "workflow")


class ConfigError(ValueError):
    """An ``OTEL_RUNCTX_*`` variable holds a value otel-runctx cannot use."""


#: Shortest accepted signing secret, in bytes (UTF-8).
MIN_SIGNING_SECRET_BYTES = 16
_KEY_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_MAX_KEY_ID_LENGTH = 32


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One HMAC key for run baggage: its id travels in the signature, the secret never does."""

    key_id: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Settings:
    """Every otel-runctx setting, parsed and validated."""

    environment: str = DEFAULT_ENVIRONMENT
    propagation_mode: PropagationMode = "lean"
    #: Where outcome events are spooled before delivery; None when the spool is off.
    outcome_spool: Path | None = None
    outcome_spool_max_bytes: int = 100 * 1024 * 1024
    #: Add ``runctx.customer_id`` as a dimension of the run metrics (high cardinality).
    outcome_metrics_customer: bool = False
    #: The price table file for the usage roll-up's cost estimate, if any.
    prices_path: Path | None = None
    #: The protocol the outcome spool forwards with (the stock OTLP log exporter's).
    otlp_logs_protocol: OtlpProtocol = "grpc"
    inbound: InboundPolicy = "trust"
    #: The first key signs outbound runs; every key verifies inbound ones.
    signing_keys: tuple[SigningKey, ...] = ()
    #: Where the ``runctx_jsonl`` exporters append, one JSON object per line (relative: to the cwd).
    jsonl_path: str = DEFAULT_JSONL_PATH
    #: Raise on an invalid id from data instead of starting the run with a safe value.
    strict: bool = False
    #: Oldest accepted inbound signature, in seconds since its issued-at time.
    signature_max_age: int = 300
    #: Seconds a graceful shutdown (SIGTERM, pool worker exit) may spend exporting buffers.
    shutdown_timeout: float = 10.0
    #: Distinct attribute sets per otel-runctx metric instrument before the overflow series.
    metrics_series_cap: int = 1000
    #: The ``runctx.*`` keys stamped on every span and log record (the root span and the outcome
    #: event always carry all of them).
    span_attribute_keys: tuple[str, ...] = tuple(f"runctx.{name}" for name in LEAN_SPAN_FIELDS)
    #: The no-collector recipe: unset ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` default to the file.
    local: bool = False
    #: The cost budget of every top-level run started without ``budget=`` (None: no default).
    default_budget_cost: float | None = None
    #: Which spans of a run the run-consistent sampler drops are still recorded (not exported):
    #: ``llm``, those that may carry LLM usage; ``all``, every one.
    sampled_out_spans: SampledOutSpans = "llm"


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Parse settings from ``environ`` (default: ``os.environ``); raise ConfigError if invalid."""
    env = os.environ if environ is None else environ
    inbound = _choice(env, ENV_INBOUND, ("trust", "verify", "ignore"), "trust")
    signing_keys = _signing_keys(env)
    if inbound == "verify" and not signing_keys:
        raise ConfigError(
            f"{ENV_INBOUND}=verify needs at least one key in {ENV_SIGNING_KEYS} "
            "(format: key_id:secret[,key_id:secret...]); without keys nothing could be verified"
        )
    return Settings(
        environment=_environment(env),
        propagation_mode=_choice(env, ENV_PROPAGATION_MODE, ("lean", "full"), "lean"),  # type: ignore[arg-type]
        outcome_spool=_outcome_spool(env),
        outcome_spool_max_bytes=_positive_int(env, ENV_OUTCOME_SPOOL_MAX_MB, 100) * 1024 * 1024,
        outcome_metrics_customer=_flag(env, ENV_OUTCOME_METRICS_CUSTOMER, False),
        prices_path=Path(env[ENV_PRICES].strip()) if env.get(ENV_PRICES, "").strip() else None,
        otlp_logs_protocol=_otlp_logs_protocol(env),
        inbound=inbound,  # type: ignore[arg-type]
        signing_keys=signing_keys,
        jsonl_path=env.get(ENV_JSONL_PATH, "").strip() or DEFAULT_JSONL_PATH,
        strict=_flag(env, ENV_STRICT, False),
        signature_max_age=_positive_int(env, ENV_SIGNATURE_MAX_AGE, 300),
        shutdown_timeout=float(_positive_int(env, ENV_SHUTDOWN_TIMEOUT, 10)),
        metrics_series_cap=_positive_int(env, ENV_METRICS_SERIES_CAP, 1000),
        span_attribute_keys=_span_attribute_keys(env),
        local=local_mode(env),
        default_budget_cost=_positive_number(env, ENV_DEFAULT_BUDGET_COST),
        sampled_out_spans=_choice(env, ENV_SAMPLED_OUT_SPANS, SAMPLED_OUT_SPANS, "llm"),  # type: ignore[arg-type]
    )


def local_mode(environ: Mapping[str, str] | None = None) -> bool:
    """``OTEL_RUNCTX_LOCAL=true``: the distro defaults every exporter to ``runctx_jsonl``.

    Read on its own because the distro needs it before anything else is configured.
    """
    return _flag(os.environ if environ is None else environ, ENV_LOCAL, False)


_cached: Settings | None = None
_lock = threading.Lock()


def get_settings() -> Settings:
    """Return the process-wide settings, parsed from the environment on first use."""
    global _cached
    settings = _cached
    if settings is None:
        with _lock:
            if _cached is None:
                _cached = load_settings()
            settings = _cached
    return settings


def reload_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Re-read the environment (or ``environ``) and replace the process-wide settings."""
    global _cached
    settings = load_settings(environ)
    with _lock:
        _cached = settings
    return settings


def _environment(env: Mapping[str, str]) -> str:
    """The run environment; one that could not be a run field stops startup, not every run."""
    explicit = env.get(ENV_ENVIRONMENT, "").strip()
    if explicit:
        return _usable_environment(ENV_ENVIRONMENT, explicit)
    resource = parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    for key in _RESOURCE_ENVIRONMENT_KEYS:
        if resource.get(key):
            return _usable_environment(f"OTEL_RESOURCE_ATTRIBUTES ({key})", resource[key])
    return DEFAULT_ENVIRONMENT


def _usable_environment(source: str, value: str) -> str:
    try:
        return check_text("environment", value)
    except ValueError as error:
        raise ConfigError(
            f"{source}={value[:40]!r}{'...' if len(value) > 40 else ''} cannot be a run's "
            f"environment: {error}; accepted: 1-256 characters without control characters"
        ) from None


def _span_attribute_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    """``lean`` (default), ``full``, or a comma-separated list of run fields (``runctx.`` prefix
    optional); ``run_id`` is always included, because it is what ties a span to its run."""
    raw = env.get(ENV_SPAN_ATTRIBUTES, "").strip()
    if raw.lower() in ("", "lean"):
        names: tuple[str, ...] = LEAN_SPAN_FIELDS
    elif raw.lower() == "full":
        names = RUN_FIELDS
    else:
        chosen = {item.strip().removeprefix("runctx.") for item in raw.split(",") if item.strip()}
        unknown = sorted(chosen - set(RUN_FIELDS))
        if unknown:
            raise ConfigError(
                f"{ENV_SPAN_ATTRIBUTES}={raw!r} is not valid: unknown field(s) "
                f"{', '.join(unknown)}; use lean (default), full, or a comma-separated list of "
                f"{', '.join(RUN_FIELDS)}"
            )
        names = tuple(name for name in RUN_FIELDS if name in chosen or name == "run_id")
    return tuple(f"runctx.{name}" for name in names)


def resource_environment_default(environ: Mapping[str, str] | None = None) -> str | None:
    """The ``deployment.environment.name`` to add to ``OTEL_RESOURCE_ATTRIBUTES``, if any.

    Only when ``OTEL_RUNCTX_ENVIRONMENT`` is set and the resource names no environment: the
    environment is a property of the process, so it belongs on the resource (sent once per
    batch), not on every span.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_ENVIRONMENT, "").strip()
    resource = parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if not explicit or any(resource.get(key) for key in _RESOURCE_ENVIRONMENT_KEYS):
        return None
    return explicit


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in allowed:
        raise ConfigError(
            f"{name}={env[name]!r} is not valid; allowed values: {', '.join(allowed)} "
            f"(default: {default})"
        )
    return raw


def _outcome_spool(env: Mapping[str, str]) -> Path | None:
    raw = env.get(ENV_OUTCOME_SPOOL, "").strip()
    if raw.lower() in ("off", "none", "false", "0"):
        return None
    if raw:
        return Path(raw).expanduser()
    cache = env.get("XDG_CACHE_HOME", "").strip()
    if cache:
        base = Path(cache)
    else:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:  # no home directory (some containers): a per-user temp dir
            base = Path(tempfile.gettempdir()) / f"otel-runctx-{os.getuid()}"
    return base / "otel-runctx" / "outcomes.sqlite3"


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and int(raw) > 0):
        raise ConfigError(
            f"{name}={env[name]!r} is not valid; accepted values: a positive integer "
            f"(default: {default})"
        )
    return int(raw)


def _positive_number(env: Mapping[str, str], name: str) -> float | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name}={env[name]!r} is not valid; expected a positive number")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _choice(env, name, ("true", "false"), "true" if default else "false")
    return raw == "true"


def _otlp_logs_protocol(env: Mapping[str, str]) -> OtlpProtocol:
    for name in ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if env.get(name, "").strip():
            if _choice(env, name, ("grpc", "http/protobuf"), "grpc") == "http/protobuf":
                return "http/protobuf"
            return "grpc"
    return "grpc"


def _signing_keys(env: Mapping[str, str]) -> tuple[SigningKey, ...]:
    """Parse ``key_id:secret,key_id:secret``; the secret is everything after the first colon."""
    keys: list[SigningKey] = []
    for index, item in enumerate(env.get(ENV_SIGNING_KEYS, "").split(",")):
        item = item.strip()
        if not item:
            continue
        key_id, colon, secret = item.partition(":")
        key_id = key_id.strip()
        where = f"{ENV_SIGNING_KEYS} entry {index + 1}"
        if not colon or not key_id:
            raise ConfigError(f"{where} must look like key_id:secret")
        if len(key_id) > _MAX_KEY_ID_LENGTH or not set(key_id) <= _KEY_ID_CHARACTERS:
            raise ConfigError(
                f"{where}: key id {key_id!r} must be 1-{_MAX_KEY_ID_LENGTH} characters of "
                "A-Z a-z 0-9 _ . -"
            )
        secret_bytes = secret.strip().encode("utf-8")
        if len(secret_bytes) < MIN_SIGNING_SECRET_BYTES:
            raise ConfigError(
                f"{where} (key id {key_id!r}): the secret must be at least "
                f"{MIN_SIGNING_SECRET_BYTES} bytes"
            )
        if any(key.key_id == key_id for key in keys):
            raise ConfigError(f"{where}: key id {key_id!r} appears twice")
        keys.append(SigningKey(key_id, secret_bytes))
    return tuple(keys)


#: OpenTelemetry variables whose values are secrets: shown as set, never printed.
_SECRET_MARKERS = ("HEADERS", "KEY", "TOKEN", "PASSWORD", "SECRET")


def process_environment() -> dict[str, str]:
    """A copy of this process's environment: for checks that look at every variable, and as the
    base of a child process's environment (what ``subprocess`` would pass on by default)."""
    return dict(os.environ)


def otel_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every ``OTEL_*`` variable that is set, secrets redacted (for ``otel-runctx doctor``)."""
    env = os.environ if environ is None else environ
    return {
        name: "<set, redacted>" if any(m in name for m in _SECRET_MARKERS) else value
        for name, value in sorted(env.items())
        if name.startswith("OTEL_")
    }


def parse_resource_attributes(raw: str) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, values percent-encoded)."""
    result: dict[str, str] = {}
    for item in raw.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            result[key.strip()] = unquote(value.strip())
    return result


def otel_logs_exporters(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The names in ``OTEL_LOGS_EXPORTER``, read now (a distro may have set its default late)."""
    env = os.environ if environ is None else environ
    raw = env.get("OTEL_LOGS_EXPORTER", "")
    return tuple(name.strip() for name in raw.split(",") if name.strip())


def known_runctx_variables() -> list[str]:
    """Every ``OTEL_RUNCTX_*`` name this version reads (the ``ENV_*`` constants)."""
    return sorted(
        value
        for name, value in globals().items()
        if name.startswith("ENV_") and isinstance(value, str) and value.startswith("OTEL_RUNCTX_")
    )


def unknown_runctx_variables(environ: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """``OTEL_RUNCTX_*`` names in ``environ`` that nothing reads: (name, closest known name or
    None). A typo otherwise fails silently: the setting keeps its default."""
    known = known_runctx_variables()
    return [
        (name, next(iter(difflib.get_close_matches(name, known, n=1)), None))
        for name in sorted(environ)
        if name.startswith("OTEL_RUNCTX_") and name not in known
    ]
