"""Doctor checks that look past the providers: can exports leave, does everything load?

Each ``check_*`` takes the :class:`~otel_runctx.cli.doctor.Diagnosis` and the environment
(a mapping, so tests can pass their own) and adds findings; none raises. They answer what the
providers alone cannot:

* each OTLP endpoint the process exports to: does a TCP connection open (short timeout)?
* which installed instrumentations fail to import (``opentelemetry-instrument`` only logs
  that at debug level, or not at all, and the library then produces no spans);
* whether stdlib ``logging`` records reach the LoggerProvider;
* outcomes waiting in the spool, and since when;
* ``OTEL_RUNCTX_*`` names nothing reads (typos).
"""

from __future__ import annotations

import json
import logging
import socket
import sqlite3
import sys
import time
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from otel_runctx.distro.defaults import LOGGING_AUTO_INSTRUMENTATION, logging_instrumentation_active
from otel_runctx.settings import ConfigError, load_settings, unknown_runctx_variables

if TYPE_CHECKING:
    from otel_runctx.cli.doctor import Diagnosis

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "check_endpoints",
    "check_instrumentations",
    "check_log_export",
    "check_spool_backlog",
    "check_unknown_variables",
    "host_port",
    "otlp_endpoints",
]

CONNECT_TIMEOUT_SECONDS = 1.0
#: Outcomes older than this still in the spool mean delivery is stuck, not just busy.
STUCK_AFTER_SECONDS = 600.0
_SIGNALS = (("traces", "TRACES"), ("metrics", "METRICS"), ("logs", "LOGS"))
_HTTP_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


def otlp_endpoints(environ: Mapping[str, str]) -> dict[str, list[str]]:
    """``endpoint URL -> [what exports there]`` for every OTLP exporter the env selects.

    Follows the SDK's rules: ``otlp`` in ``OTEL_<SIGNAL>_EXPORTER`` (the distro's default),
    the signal's protocol (gRPC unless ``http/protobuf``), its own endpoint variable, else
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, else localhost:4317 / :4318. ``runctx_outcome`` sends
    with the logs settings.
    """
    found: dict[str, list[str]] = {}
    for signal, upper in _SIGNALS:
        names = {n.strip() for n in environ.get(f"OTEL_{upper}_EXPORTER", "otlp").split(",")}
        users = [signal] if names & {"otlp", "otlp_proto_grpc", "otlp_proto_http"} else []
        if signal == "logs" and "runctx_outcome" in names:
            users.append("outcome spool")
        if not users:
            continue
        protocol = (
            environ.get(f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL", "").strip()
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
            or "grpc"
        )
        if "otlp_proto_http" in names:
            protocol = "http/protobuf"
        own = environ.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT", "").strip()
        base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if protocol == "grpc":
            endpoint = own or base or "http://localhost:4317"
        else:
            endpoint = own or (base.rstrip("/") + _HTTP_PATHS[signal] if base else "")
            endpoint = endpoint or f"http://localhost:4318{_HTTP_PATHS[signal]}"
        found.setdefault(endpoint, []).extend(users)
    return found


def host_port(endpoint: str) -> tuple[str, int]:
    """(host, port) of an OTLP endpoint URL (gRPC ones may omit the scheme)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"http://{endpoint}")
    default = 443 if parts.scheme == "https" else 80
    return parts.hostname or "localhost", parts.port or default


def check_endpoints(diagnosis: Diagnosis, environ: Mapping[str, str]) -> None:
    if environ.get("OTEL_CONFIG_FILE", "").strip():
        diagnosis.add("ok", "endpoints", "OTEL_CONFIG_FILE is set: exporters come from the file")
        return
    endpoints = otlp_endpoints(environ)
    if not endpoints:
        diagnosis.add("ok", "endpoints", "no OTLP exporter selected")
        return
    for endpoint, users in endpoints.items():
        host, port = host_port(endpoint)
        what = f"{', '.join(users)} -> {endpoint}"
        started = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
                pass
        except OSError as error:
            diagnosis.add(
                "problem",
                "endpoints",
                f"{what}: cannot connect to {host}:{port} ({error.strerror or error}); "
                "this telemetry is not delivered",
                "start the collector, or point OTEL_EXPORTER_OTLP_ENDPOINT (or the signal's "
                "OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT) at it; with no collector, set "
                "OTEL_RUNCTX_LOCAL=true to write everything to the local runctx_jsonl file",
            )
            continue
        took = (time.monotonic() - started) * 1000
        diagnosis.add("ok", "endpoints", f"{what}: connected ({took:.0f} ms)")


def check_instrumentations(diagnosis: Diagnosis, environ: Mapping[str, str]) -> None:
    """Import every installed instrumentor as ``opentelemetry-instrument`` would."""
    from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts

    disabled = {
        n.strip() for n in environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    }
    loaded, skipped = [], []
    for point in entry_points(group="opentelemetry_instrumentor"):
        if point.name in disabled or "*" in disabled:
            continue
        dist = getattr(point, "dist", None)
        label = f"{point.name} ({dist.name} {dist.version})" if dist is not None else point.name
        try:
            if dist is not None and get_dist_dependency_conflicts(dist) is not None:
                skipped.append(point.name)
                continue
            point.load()
        except Exception as error:
            diagnosis.add(
                "problem",
                "instrumentations",
                f"{label} fails to load: {type(error).__name__}: {error}; "
                "opentelemetry-instrument skips it silently, so this library produces no spans",
                f"install versions that match (pip install -U {dist.name if dist else point.name} "
                "and the opentelemetry-* packages it needs), or turn it off with "
                f"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS={point.name}",
            )
            continue
        loaded.append(point.name)
    detail = f"{len(loaded)} load ({', '.join(sorted(loaded)) or 'none'})"
    if skipped:
        names = ", ".join(sorted(skipped))
        detail += f"; {len(skipped)} skipped, their library is not installed ({names})"
    diagnosis.add("ok", "instrumentations", detail)


def check_log_export(diagnosis: Diagnosis, environ: Mapping[str, str]) -> None:
    """Whether a handler bridges stdlib ``logging`` into the OpenTelemetry LoggerProvider."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if type(h).__name__ == "LoggingHandler" and type(h).__module__.startswith("opentelemetry")
    ]
    if handlers:
        where = type(handlers[0]).__module__
        diagnosis.add("ok", "stdlib logging", f"exported with runctx.* ({where}.LoggingHandler)")
        return
    chose_off = environ.get(LOGGING_AUTO_INSTRUMENTATION, "").strip().lower() not in ("", "true")
    automatic = "opentelemetry.instrumentation.auto_instrumentation" in sys.modules
    detail = "no OpenTelemetry handler on the root logger: logging records are not exported"
    if chose_off and not logging_instrumentation_active(environ):
        detail += f" ({LOGGING_AUTO_INSTRUMENTATION}={environ[LOGGING_AUTO_INSTRUMENTATION]})"
    fix = (
        "under opentelemetry-instrument with the runctx distro, unset "
        f"{LOGGING_AUTO_INSTRUMENTATION} (the distro then turns it on), or pip install "
        "opentelemetry-instrumentation-logging; "
        "in code: opentelemetry.instrumentation.logging.LoggingInstrumentor().instrument()"
    )
    diagnosis.add(
        "problem" if automatic and not chose_off else "warn", "stdlib logging", detail, fix
    )


def check_spool_backlog(diagnosis: Diagnosis, environ: Mapping[str, str]) -> None:
    """Outcomes stored but not yet acknowledged by a collector, and the oldest one's age."""
    try:
        path = load_settings(environ).outcome_spool
    except ConfigError:
        return  # the settings check reports it
    if path is None or not path.exists():
        return
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            pending = int(db.execute("SELECT count(*) FROM outcomes").fetchone()[0])
            row = db.execute("SELECT payload FROM outcomes ORDER BY seq LIMIT 1").fetchone()
        finally:
            db.close()
    except (sqlite3.Error, OSError) as error:
        diagnosis.add("warn", "spool backlog", f"cannot read {path}: {error}")
        return
    if not pending:
        diagnosis.add("ok", "spool backlog", f"no outcome waiting in {path}")
        return
    oldest = _timestamp(row[0] if row else None)
    since, age = "", 0.0
    if oldest is not None:
        age = max(0.0, time.time() - oldest)
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(oldest))
        since = f" since {when} ({age:.0f} s ago)"
    diagnosis.add(
        "problem" if age > STUCK_AFTER_SECONDS else "warn",
        "spool backlog",
        f"{pending} outcome(s) waiting in {path}{since}: not acknowledged by a collector yet",
        "make the OTLP logs endpoint reachable (see the endpoints check); any process using "
        "this spool with runctx_outcome in OTEL_LOGS_EXPORTER sends them",
    )


def _timestamp(payload: object) -> float | None:
    try:
        body = json.loads(payload)  # type: ignore[arg-type]
        nanos = body.get("t") or body.get("ot")
        return float(nanos) / 1e9 if nanos else None
    except Exception:
        return None


def check_unknown_variables(diagnosis: Diagnosis, environ: Mapping[str, str]) -> None:
    unknown = unknown_runctx_variables(environ)
    for name, closest in unknown:
        diagnosis.add(
            "problem",
            "unknown variable",
            f"{name} is not an otel-runctx setting: it is ignored",
            f"did you mean {closest}?"
            if closest
            else "remove it (`otel-runctx doctor` lists the settings it reads under 'settings')",
        )
    if not unknown:
        diagnosis.add("ok", "unknown variable", "every OTEL_RUNCTX_* name is a known setting")
