"""Recording one outcome: root span attributes, the ``runctx.outcome`` event, the spool, metrics.

Called once per run, after the outcome was validated. Nothing here raises into user code: each
step that fails is counted and logged, and the other steps still happen.

Every outcome event carries its run's lineage (``event_id``, ``root_run_id``,
``parent_run_id``, ``attempt``, ``retry_of_run_id``) and its own run's usage only, so sums by
event, root run or customer count each run once. ``runctx.sample.probability`` is the share of
runs the sampler exports; ``runctx.usage.complete`` is true when the roll-up saw every span of
the run here that may carry tokens (see sampling/coverage.py; ``runctx.usage.sampled_out_spans``
counts the others, dropped by the sampler); ``runctx.usage.final`` is false only on the pending
record of an early outcome (see outcomes/emit.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from opentelemetry import metrics
from opentelemetry._logs import Logger, LogRecord, SeverityNumber, get_logger, get_logger_provider
from opentelemetry.context import Context
from opentelemetry.metrics import Histogram
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue

from otel_runctx import keys
from otel_runctx.context import RunContext, RunStatus
from otel_runctx.metrics import SeriesCap
from otel_runctx.outcomes import _fast_emit, _fast_record
from otel_runctx.outcomes.active import get_active_delivery, get_active_spool
from otel_runctx.outcomes.events import emit_soon
from otel_runctx.outcomes.model import OUTCOME_EVENT_NAME, Outcome
from otel_runctx.outcomes.pipeline import pipeline_ignores_delivered
from otel_runctx.outcomes.run_counter import SummedCounter
from otel_runctx.processors import _fast_stamp
from otel_runctx.sampling import SamplingCoverage, coverage_of, provider_sampler
from otel_runctx.settings import get_settings
from otel_runctx.stats import report_error
from otel_runctx.usage.prices import get_price_table, price_table_is_broken
from otel_runctx.usage.rollup import RunUsage
from otel_runctx.usage.spend import budget_of

__all__ = ["PENDING_HOLD_SECONDS", "deliver_outcome", "spool_pending_outcome"]

#: How long the spool holds an early outcome's pending record for the run's final one. A run
#: still open after this gets its pending record sent; the final one is then sent as well
#: (same outcome id: keep the one with ``runctx.usage.final=true``).
PENDING_HOLD_SECONDS = 3600.0

_SCOPE_NAME = "otel_runctx"
_SCOPE_VERSION: str | None = None

_SEVERITY = {
    RunStatus.SUCCESS: SeverityNumber.INFO,
    RunStatus.PARTIAL: SeverityNumber.WARN,
    RunStatus.CANCELED: SeverityNumber.WARN,
    RunStatus.TIMEOUT: SeverityNumber.ERROR,
    RunStatus.FAILURE: SeverityNumber.ERROR,
}
# Looked up once here: an enum's .name and .value are descriptor calls, several per run.
_SEVERITY_TEXT = {status: severity.name for status, severity in _SEVERITY.items()}
_STATUS_TEXT = {status: status.value for status in RunStatus}

_instruments: tuple[SummedCounter, Histogram] | None = None
#: The series cap, for the instruments it was made for (new instruments: a new cap).
_cap: SeriesCap | None = None
_cap_for: object = None
#: Dimension sets the cap admitted, by (workflow, environment, status, customer or None).
_admitted: dict[tuple[str, str, str, str | None], Mapping[str, AttributeValue]] = {}
_admitted_by: SeriesCap | None = None  # the cap that admitted them
_MAX_ADMITTED = 4096
_logger: Logger | None = None
_default_resource: Resource | None = None


def _metrics_instruments() -> tuple[SummedCounter, Histogram]:
    global _instruments
    if _instruments is None:
        meter = metrics.get_meter(_SCOPE_NAME)
        _instruments = (
            # Summed here, read by the SDK when it collects (see outcomes/run_counter.py).
            SummedCounter(
                meter, "runctx.runs", unit="{run}", description="Runs that ended, by status"
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


_coverage_for: tuple[object, SamplingCoverage] | None = None


def _sampling_coverage() -> SamplingCoverage:
    """``coverage_of`` the global provider's sampler, worked out once per sampler object."""
    global _coverage_for
    sampler = provider_sampler()
    cached = _coverage_for
    if cached is None or cached[0] is not sampler:
        cached = _coverage_for = (sampler, coverage_of(sampler))
    return cached[1]


def _outcome_attributes(
    run: RunContext,
    outcome: Outcome,
    outcome_id: str,
    root_span: Span | None,
    duration_seconds: float | None,
    usage: RunUsage | None,
    final: bool,
) -> dict[str, AttributeValue]:
    extra: dict[str, AttributeValue] = outcome.to_attributes()
    extra["runctx.outcome.id"] = outcome_id
    if duration_seconds is not None:
        extra["runctx.outcome.duration_ms"] = duration_seconds * 1000.0
    complete = False
    try:
        coverage = _sampling_coverage()
        if coverage.probability is not None:
            extra["runctx.sample.probability"] = coverage.probability
        recording = root_span is not None and root_span.is_recording()
        complete = usage is not None and coverage.usage_complete(recording)
    except Exception as error:
        report_error("outcome.sampling", error)
    if usage is not None:
        try:
            prices = get_price_table()
            use_catalog = not price_table_is_broken()
        except Exception as error:  # a broken price file: tokens without cost
            report_error("outcome.prices", error)
            prices, use_catalog = None, False
        try:
            extra.update(usage.to_attributes(prices, use_catalog=use_catalog))
        except Exception as error:
            report_error("outcome.usage", error)
            complete = False
    extra["runctx.usage.complete"] = complete
    extra["runctx.usage.final"] = final
    budget = budget_of(run)
    if budget is not None:  # runctx.budget.*: limits, spend, and the limit reached (if any)
        try:
            extra.update(budget.to_attributes())
        except Exception as error:
            report_error("outcome.budget", error)
    return extra


def spool_pending_outcome(
    run: RunContext,
    outcome: Outcome,
    *,
    outcome_id: str,
    root_span: Span | None,
    context: Context | None,
    duration_seconds: float | None,
    usage: RunUsage | None,
) -> bool:
    """Write an early outcome's pending record (usage so far) to the spool, held for the final
    one. True if it is durable now; False without a spool that supports holding. Never raises."""
    try:
        spool = get_active_spool()
        if spool is None:
            return False
        extra = _outcome_attributes(
            run, outcome, outcome_id, root_span, duration_seconds, usage, final=False
        )
        record = _record(run, outcome, extra, context)
        return spool.append(
            record,
            outcome_id,
            _resource(),
            (_SCOPE_NAME, _SCOPE_VERSION),
            hold_seconds=PENDING_HOLD_SECONDS,
        )
    except Exception as error:
        report_error("outcome.pending", error)
        return False


def deliver_outcome(
    run: RunContext,
    outcome: Outcome,
    *,
    outcome_id: str,
    root_span: Span | None,
    context: Context | None,
    duration_seconds: float | None,
    usage: RunUsage | None,
    replaces_pending: bool = False,
) -> None:
    """Record ``outcome`` for ``run`` in all three places. Never raises.

    ``replaces_pending``: a pending record of this outcome is in the spool; this final one
    takes its place there.
    """
    extra = _outcome_attributes(
        run, outcome, outcome_id, root_span, duration_seconds, usage, final=True
    )
    if root_span is not None:
        try:
            if root_span.is_recording():
                _fast_stamp.stamp_scalars(root_span, extra)
        except Exception as error:
            report_error("outcome.root_span", error)
    try:
        _emit_event(run, outcome, outcome_id, extra, context, replaces_pending)
    except Exception as error:
        report_error("outcome.event", error)
    try:
        _record_metrics(run, outcome, duration_seconds)
    except Exception as error:
        report_error("outcome.metrics", error)


def _record(
    run: RunContext,
    outcome: Outcome,
    extra: Mapping[str, AttributeValue],
    context: Context | None,
) -> LogRecord:
    # The run's full attribute set (lineage spelled out even when span stamping is lean).
    attributes = dict(run.to_span_attributes())
    attributes.update(extra)
    status = outcome.status
    return _fast_record.new_record(
        time.time_ns(),
        context,
        _SEVERITY[status],
        _SEVERITY_TEXT[status],
        f"run {run.workflow} ended: {_STATUS_TEXT[status]}",
        attributes,
        OUTCOME_EVENT_NAME,
    )


def _emit_event(
    run: RunContext,
    outcome: Outcome,
    outcome_id: str,
    extra: Mapping[str, AttributeValue],
    context: Context | None,
    replaces_pending: bool = False,
) -> None:
    record = _record(run, outcome, extra, context)
    global _logger
    if _logger is None:
        # Before an SDK provider is set this is a proxy that forwards to it once there is one.
        _logger = get_logger(_SCOPE_NAME)
    delivery = get_active_delivery()
    if delivery is None:
        _fast_emit.emit(_logger, record)  # the SDK pipeline is the only way out: best effort
        return
    # First to disk (or the direct queue), then to the SDK pipeline, whose OTLP exporters skip
    # the record (it is marked delivered); the pipeline replaces record.attributes in place.
    # When nothing in the pipeline would see it (the default wiring), it is not emitted there,
    # and the spool's worker may send this object as it is.
    to_pipeline = not pipeline_ignores_delivered(_logger)
    delivery.deliver(
        record,
        outcome_id,
        _resource(),
        (_SCOPE_NAME, _SCOPE_VERSION),
        replaces=replaces_pending,
        sole_owner=not to_pipeline,
    )
    if to_pipeline:
        emit_soon(_logger, record)


def _record_metrics(run: RunContext, outcome: Outcome, duration_seconds: float | None) -> None:
    runs, duration = _metrics_instruments()
    global _cap, _cap_for, _admitted, _admitted_by
    if _cap is None or _cap_for is not _instruments:
        _cap, _cap_for = SeriesCap(get_settings().metrics_series_cap), _instruments
    if _admitted_by is not _cap:
        _admitted, _admitted_by = {}, _cap
    status = _STATUS_TEXT[outcome.status]
    by_customer = get_settings().outcome_metrics_customer
    key = (run.workflow, run.environment, status, run.customer_id if by_customer else None)
    admitted = _admitted.get(key)
    if admitted is None:
        dimensions: dict[str, AttributeValue] = {
            keys.WORKFLOW: run.workflow,
            keys.ENVIRONMENT: run.environment,
            "runctx.outcome.status": status,
        }
        if by_customer:
            dimensions[keys.CUSTOMER_ID] = run.customer_id
        # Workflow names and customer ids can come from inbound data: each instrument's series
        # are capped (OTEL_RUNCTX_METRICS_SERIES_CAP), the rest go to the otel.metric.overflow
        # series. Both instruments are recorded with the same dimensions (the duration only
        # when known), so one cap admits each set for both.
        admitted = _cap.admit(dimensions)
        # An admitted set stays admitted: remembered (at most the cap's worth), so later runs
        # skip building and checking it. An overflowed one is checked (and counted) each time.
        if admitted is dimensions and len(_admitted) < _MAX_ADMITTED:
            _admitted[key] = admitted
    runs.add(1, admitted)
    if duration_seconds is not None:
        duration.record(duration_seconds, admitted)
