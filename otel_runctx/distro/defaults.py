"""The env defaults the runctx distro adds beyond the stock ones: local mode and logging.

* **Local mode** (``OTEL_RUNCTX_LOCAL=true``): every ``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` the
  user left unset defaults to ``runctx_jsonl``, so spans, log records *and* metrics go to the
  local file. Without it metrics would stay on OTLP, and with no collector the SDK logs
  ``UNAVAILABLE`` errors and retries for seconds at exit.
* **Stdlib logging**: log records are only exported when a handler bridges ``logging`` into the
  LoggerProvider. ``opentelemetry-instrumentation-logging`` adds one when it is installed and
  enabled; otherwise, unless the user set ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED``,
  we turn on the SDK's own handler with it (it is deprecated in favour of the instrumentation,
  but it is what every SDK install has). ``...ENABLED=false`` switches it off.

Both take the environment as a mapping and return the defaults to set; the distro applies them.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points

from otel_runctx.settings import local_mode

__all__ = [
    "LOCAL_EXPORTERS",
    "LOGGING_AUTO_INSTRUMENTATION",
    "local_defaults",
    "logging_defaults",
    "logging_instrumentation_active",
]

LOCAL_EXPORTERS = {
    "OTEL_TRACES_EXPORTER": "runctx_jsonl",
    "OTEL_METRICS_EXPORTER": "runctx_jsonl",
    "OTEL_LOGS_EXPORTER": "runctx_jsonl",
}
#: The SDK's switch for its own stdlib logging handler.
LOGGING_AUTO_INSTRUMENTATION = "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"


def local_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """The exporter defaults of local mode (empty when it is off); raises ConfigError if the
    flag is not ``true``/``false``."""
    return dict(LOCAL_EXPORTERS) if local_mode(environ) else {}


def logging_instrumentation_active(environ: Mapping[str, str]) -> bool:
    """Whether ``opentelemetry-instrument`` will load ``opentelemetry-instrumentation-logging``
    with its log handler on (installed, not disabled, handler not switched off)."""
    disabled = {
        name.strip() for name in environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    }
    if "logging" in disabled or "*" in disabled:
        return False
    if environ.get("OTEL_PYTHON_LOG_AUTO_INSTRUMENTATION", "true").strip().lower() != "true":
        return False
    return any(
        point.name == "logging" for point in entry_points(group="opentelemetry_instrumentor")
    )


def logging_defaults(environ: Mapping[str, str]) -> dict[str, str]:
    """Turn on the SDK's logging handler unless the user chose, or the instrumentation will
    install its own (two handlers would export every record twice)."""
    if environ.get(LOGGING_AUTO_INSTRUMENTATION, "").strip():
        return {}
    if logging_instrumentation_active(environ):
        return {}
    return {LOGGING_AUTO_INSTRUMENTATION: "true"}
