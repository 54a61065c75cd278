"""Recording one outcome: root span attributes, the ``runctx.outcome`` event, the spool, metrics.

Called once per run, after the outcome was validated. Nothing here raises into user code: each
step that fails is counted and logged, and the other steps still happen.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import metrics
from opentelemetry._logs import Logger, LogRecord, SeverityNumber, get_logger, get_logger_provider
from opentelemetry.context import Context
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from otel_runctx import keys
from otel_runctx.context import RunContext, RunStatus
from otel_runctx.metrics import SeriesCap
from otel_runctx.outcomes.active import get_active_spool
from otel_runctx.outcomes.events import emit_soon
from otel_runctx.outcomes.model import OUTCOME_EVENT_NAME, Outcome
from otel_runctx.settings import get_settings
from otel_runctx.stats import report_error
from otel_runctx.usage.prices import get_price_table
from otel_runctx.usage.rollup import RunUsage
from otel_runctx.usage.spend import budget_of

__all__ = ["deliver_outcome"]

_SCOPE_NAME = "otel_runctx"
_SCOPE_VERSION: str | None = None

_SEVERITY = {
    RunStatus.SUCCESS: SeverityNumber.INFO,
    RunStatus.PARTIAL: SeverityNumber.WARN,
    RunStatus.CANCELED: SeverityNumber.WARN,
    RunStatus.TIMEOUT: SeverityNumber.ERROR,
    RunStatus.FAILURE: SeverityNumber.ERROR,
}

_instruments: tuple[Counter, Histogram] | None = None
#: The series caps, for the instruments they were made for (new instruments: new caps).
_caps: tuple[SeriesCap, SeriesCap] | None = None
_caps_for: object = None
_logger: Logger | None = None
_default_resource: Resource | None = None


def _metrics_instruments() -> tuple[Counter, Histogram]:
    global _instruments
    if _instruments is None:
        meter = metrics.get_meter(_SCOPE_NAME)
        _instruments = (
            meter.create_counter(
                "runctx.runs", unit="{run}", description="Runs that ended, by status"
            ),
            meter.create_histogram("runctx.run.duration", unit="s", description="Run duration"),
        )
    return _instruments


def _resource() -> Resource:
    """The resource the global LoggerProvider stamps on records (the SDK default without one)."""
    global _default_resource
    resource = getattr(get_logger_provider(), "resource", None)
    if isinstance(resource, Resource):
        return resource
    if _default_resource is None:
        _default_resource = Resource.create({})
    return _default_resource


def deliver_outcome(
    run: RunContext,
    outcome: Outcome,
    *,
    outcome_id: str,
    root_span: Span | None,
    context: Context | None,
    duration_seconds: float | None,
    usage: RunUsage | None,
) -> None:
    """Record ``outcome`` for ``run`` in all three places. Never raises."""
    extra: dict[str, AttributeValue] = outcome.to_attributes()
    extra["runctx.outcome.id"] = outcome_id
    if duration_seconds is not None:
        extra["runctx.outcome.duration_ms"] = duration_seconds * 1000.0
    if usage is not None:
        try:
            prices = get_price_table()
        except Exception as error:  # a broken price file: tokens without cost
            report_error("outcome.prices", error)
            prices = None
        try:
            extra.update(usage.to_attributes(prices))
        except Exception as error:
            report_error("outcome.usage", error)
    budget = budget_of(run)
    if budget is not None:  # runctx.budget.*: limits, spend, and the limit reached (if any)
        try:
            extra.update(budget.to_attributes())
        except Exception as error:
            report_error("outcome.budget", error)
    if root_span is not None:
        try:
            if root_span.is_recording():
                root_span.set_attributes(extra)
        except Exception as error:
            report_error("outcome.root_span", error)
    try:
        _emit_event(run, outcome, outcome_id, extra, context)
    except Exception as error:
        report_error("outcome.event", error)
    try:
        _record_metrics(run, outcome, duration_seconds)
    except Exception as error:
        report_error("outcome.metrics", error)


def _emit_event(
    run: RunContext,
    outcome: Outcome,
    outcome_id: str,
    extra: Mapping[str, AttributeValue],
    context: Context | None,
) -> None:
    attributes = dict(run.to_span_attributes())
    attributes.update(extra)
    now = time.time_ns()
    record = LogRecord(
        timestamp=now,
        observed_timestamp=now,
        context=context,
        severity_number=_SEVERITY[outcome.status],
        severity_text=_SEVERITY[outcome.status].name,
        body=f"run {run.workflow} ended: {outcome.status.value}",
        attributes=attributes,
        event_name=OUTCOME_EVENT_NAME,
    )
    global _logger
    if _logger is None:
        # Before an SDK provider is set this is a proxy that forwards to it once there is one.
        _logger = get_logger(_SCOPE_NAME)
    spool = get_active_spool()
    # First to disk, then to the SDK pipeline (which replaces record.attributes in place).
    if spool is not None and spool.append(
        record, outcome_id, _resource(), (_SCOPE_NAME, _SCOPE_VERSION)
    ):
        emit_soon(_logger, record)
    else:
        _logger.emit(record)


def _record_metrics(run: RunContext, outcome: Outcome, duration_seconds: float | None) -> None:
    runs, duration = _metrics_instruments()
    dimensions: dict[str, AttributeValue] = {
        keys.WORKFLOW: run.workflow,
        keys.ENVIRONMENT: run.environment,
        "runctx.outcome.status": outcome.status.value,
    }
    if get_settings().outcome_metrics_customer:
        dimensions[keys.CUSTOMER_ID] = run.customer_id
    # Workflow names and customer ids can come from inbound data: each instrument's series are
    # capped (OTEL_RUNCTX_METRICS_SERIES_CAP), the rest go to the otel.metric.overflow series.
    global _caps, _caps_for
    if _caps is None or _caps_for is not _instruments:
        cap = get_settings().metrics_series_cap
        _caps, _caps_for = (SeriesCap(cap), SeriesCap(cap)), _instruments
    runs.add(1, _caps[0].admit(dimensions))
    if duration_seconds is not None:
        duration.record(duration_seconds, _caps[1].admit(dimensions))
