"""otel-runctx: every span and log record carries the run, event and customer it belongs to."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

from otel_runctx.context import (
    NoRunContextError,
    RunContext,
    RunStatus,
    get_run_context,
    require_run_context,
    reset_run_context,
    set_run_context,
)
from otel_runctx.decorators import workflow
from otel_runctx.distro.configure import configure
from otel_runctx.ids import generate_run_id
from otel_runctx.outcomes.emit import emit_outcome
from otel_runctx.run_state.budget import Budget, BudgetExceeded
from otel_runctx.run_state.local import RunLocal
from otel_runctx.runs import run

try:
    __version__ = _distribution_version("otel-runctx")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "Budget",
    "BudgetExceeded",
    "NoRunContextError",
    "RunContext",
    "RunLocal",
    "RunStatus",
    "configure",
    "emit_outcome",
    "generate_run_id",
    "get_run_context",
    "require_run_context",
    "reset_run_context",
    "run",
    "set_run_context",
    "workflow",
]
