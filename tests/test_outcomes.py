"""Outcomes: one per run, automatic or explicit; on the root span, as an event, as metrics."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry._logs import get_logger_provider, set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import (
    NoRunContextError,
    RunContext,
    RunStatus,
    emit_outcome,
    reset_run_context,
    run,
    set_run_context,
    stats,
    workflow,
)
from otel_runctx.outcomes import delivery as outcome_delivery
from otel_runctx.outcomes import emit as outcomes
from otel_runctx.outcomes.model import (
    AUTOMATIC_SUCCESS,
    OUTCOME_EVENT_NAME,
    Outcome,
    outcome_id_for,
)
from otel_runctx.outcomes.run_counter import SummedCounter
from otel_runctx.runs import RunScope
from otel_runctx.usage import rollup

_LOG_EXPORTER = InMemoryLogRecordExporter()


def install_log_exporter() -> InMemoryLogRecordExporter:
    """Route the global LoggerProvider's records into one in-memory exporter (set up once).

    OpenTelemetry lets a process set the global LoggerProvider once; if another test module set
    it first, the exporter is added to that provider instead.
    """
    provider = get_logger_provider()
    if not isinstance(provider, LoggerProvider):
        provider = LoggerProvider(shutdown_on_exit=False)
        set_logger_provider(provider)
    if not getattr(provider, "_runctx_test_exporter", False):
        provider.add_log_record_processor(SimpleLogRecordProcessor(_LOG_EXPORTER))
        provider._runctx_test_exporter = True  # type: ignore[attr-defined]
    return _LOG_EXPORTER


def outcome_records(exporter: InMemoryLogRecordExporter) -> list[ReadableLogRecord]:
    return [
        r for r in exporter.get_finished_logs() if r.log_record.event_name == OUTCOME_EVENT_NAME
    ]


def attributes_of(record: ReadableLogRecord) -> dict[str, Any]:
    return dict(record.log_record.attributes or {})


@pytest.fixture
def metric_reader(monkeypatch: pytest.MonkeyPatch) -> InMemoryMetricReader:
    """A private MeterProvider behind the outcome instruments (the global one can be set once)."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("otel_runctx")
    monkeypatch.setattr(
        outcome_delivery,
        "_instruments",
        (SummedCounter(meter, "runctx.runs"), meter.create_histogram("runctx.run.duration")),
    )
    return reader


def only_outcome(exporter: InMemoryLogRecordExporter) -> dict[str, Any]:
    records = outcome_records(exporter)
    assert len(records) == 1, [attributes_of(r) for r in records]
    return attributes_of(records[0])


# -- automatic outcomes -------------------------------------------------------------------------


def test_normal_exit_records_success_with_run_attributes_id_and_duration(
    logs: InMemoryLogRecordExporter, spans: InMemorySpanExporter
) -> None:
    with run("ticket", event_id="T-1", customer_id="acme", tenant_id="t1") as ctx:
        time.sleep(0.01)
    event = only_outcome(logs)
    for key, value in ctx.to_span_attributes().items():
        assert event[key] == value
    assert event["runctx.outcome.status"] == "success"
    assert event["runctx.outcome.automatic"] is True
    assert event["runctx.outcome.id"] == outcome_id_for(ctx)
    assert event["runctx.outcome.duration_ms"] >= 10
    assert "runctx.outcome.error_type" not in event
    (root,) = [s for s in spans.get_finished_spans() if s.name == "run ticket"]
    assert root.attributes is not None
    assert root.attributes["runctx.outcome.status"] == "success"
    assert root.attributes["runctx.outcome.id"] == event["runctx.outcome.id"]
    # The event links to the run's root span.
    record = outcome_records(logs)[0].log_record
    assert record.trace_id == root.context.trace_id
    assert record.span_id == root.context.span_id


def test_exception_records_failure_with_the_exception_class(
    logs: InMemoryLogRecordExporter,
) -> None:
    with pytest.raises(KeyError):
        with run("ticket", event_id="T-2", customer_id="acme"):
            raise KeyError("missing")
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == "failure"
    assert event["runctx.outcome.error_type"] == "KeyError"
    assert event["runctx.outcome.reason"] == "'missing'"


async def test_cancelled_task_records_canceled(logs: InMemoryLogRecordExporter) -> None:
    started = asyncio.Event()

    async def job() -> None:
        async with run("ticket", event_id="T-3", customer_id="acme"):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(job())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == "canceled"
    assert event["runctx.outcome.error_type"] == "CancelledError"


def test_passed_deadline_records_timeout(logs: InMemoryLogRecordExporter) -> None:
    with run("ticket", event_id="T-4", customer_id="acme", deadline_seconds=0.01):
        time.sleep(0.02)
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == "timeout"
    assert event["runctx.outcome.reason"] == "deadline passed"


def test_timeout_error_records_timeout(logs: InMemoryLogRecordExporter) -> None:
    with pytest.raises(TimeoutError):
        with run("ticket", event_id="T-4b", customer_id="acme"):
            raise TimeoutError("upstream took too long")
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == "timeout"
    assert event["runctx.outcome.error_type"] == "TimeoutError"


def test_cancellation_request_records_canceled_with_its_reason(
    logs: InMemoryLogRecordExporter,
) -> None:
    with run("ticket", event_id="T-5", customer_id="acme") as ctx:
        ctx.request_cancellation("customer closed the ticket")
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == "canceled"
    assert event["runctx.outcome.reason"] == "customer closed the ticket"


def test_status_hint_from_the_closer_wins(logs: InMemoryLogRecordExporter) -> None:
    scope = RunScope("isolated", event_id="T-6", customer_id="acme")
    scope.open()
    scope.close(None, RunStatus.TIMEOUT)
    assert only_outcome(logs)["runctx.outcome.status"] == "timeout"


def test_isolation_timeout_records_timeout_and_the_late_worker_cannot_add_another(
    logs: InMemoryLogRecordExporter,
) -> None:
    from otel_runctx.isolation import run_isolated

    late: list[bool] = []
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        late.append(emit_outcome("success"))  # the run already ended as TIMEOUT
        finished.set()

    isolated = RunContext.create("isolated", event_id="T-6b", customer_id="acme")
    with pytest.raises(TimeoutError):
        run_isolated(slow, run=isolated, timeout=0.05)
    assert finished.wait(5)
    assert late == [False]
    event = only_outcome(logs)
    assert event["runctx.run_id"] == isolated.run_id
    assert event["runctx.outcome.status"] == "timeout"
    assert event["runctx.outcome.error_type"] == "TimeoutError"


def test_child_runs_get_their_own_outcome(logs: InMemoryLogRecordExporter) -> None:
    with run("parent", event_id="T-7", customer_id="acme") as parent:
        with pytest.raises(ValueError):
            with run("child") as child:
                raise ValueError("child broke")
    by_run = {attributes_of(r)["runctx.run_id"]: attributes_of(r) for r in outcome_records(logs)}
    assert by_run[child.run_id]["runctx.outcome.status"] == "failure"
    assert by_run[child.run_id]["runctx.parent_run_id"] == parent.run_id
    assert by_run[parent.run_id]["runctx.outcome.status"] == "success"


def test_workflow_decorator_records_automatic_outcomes(logs: InMemoryLogRecordExporter) -> None:
    @workflow("decorated", event_id="T-8", customer_id="acme")
    def ok() -> int:
        return 1

    @workflow("decorated-gen", event_id="T-9", customer_id="acme")
    def numbers() -> Iterator[int]:
        yield 1
        raise RuntimeError("generator broke")

    ok()
    with pytest.raises(RuntimeError):
        list(numbers())
    statuses = {
        attributes_of(r)["runctx.workflow"]: attributes_of(r)["runctx.outcome.status"]
        for r in outcome_records(logs)
    }
    assert statuses == {"decorated": "success", "decorated-gen": "failure"}


# -- explicit outcomes --------------------------------------------------------------------------


def test_explicit_outcome_replaces_the_automatic_one_and_is_completed_at_run_end(
    logs: InMemoryLogRecordExporter, spans: InMemorySpanExporter
) -> None:
    with run("ticket", event_id="T-10", customer_id="acme") as ctx:
        recorded = emit_outcome(
            RunStatus.PARTIAL,
            value_type="refund_usd",
            value_amount=12.5,
            confidence=0.8,
            reason="two of three items",
            metadata={"items": {"done": 2, "total": 3}, "tags": ["a", "b"]},
        )
        assert recorded is True
        # Without the spool the event waits for the run's end, so its usage is the whole
        # run's (issue 10: an early outcome does not freeze usage).
        assert outcome_records(logs) == []
    event = only_outcome(logs)  # one, and no automatic one at the end
    assert event["runctx.run_id"] == ctx.run_id
    assert event["runctx.outcome.status"] == "partial"
    assert event["runctx.outcome.automatic"] is False
    assert event["runctx.outcome.value_type"] == "refund_usd"
    assert event["runctx.outcome.value_amount"] == 12.5
    assert event["runctx.outcome.confidence"] == 0.8
    assert event["runctx.outcome.reason"] == "two of three items"
    assert event["runctx.outcome.metadata.items.done"] == 2
    assert event["runctx.outcome.metadata.items.total"] == 3
    assert tuple(event["runctx.outcome.metadata.tags"]) == ("a", "b")
    (root,) = [s for s in spans.get_finished_spans() if s.name == "run ticket"]
    assert root.attributes is not None
    assert root.attributes["runctx.outcome.value_amount"] == 12.5


def test_second_outcome_for_the_same_run_is_rejected_and_counted(
    logs: InMemoryLogRecordExporter,
) -> None:
    before = stats.snapshot().get("errors.emit_outcome.duplicate", 0)
    with run("ticket", event_id="T-11", customer_id="acme"):
        assert emit_outcome("success", value_amount=1) is True
        assert emit_outcome("failure", reason="changed my mind") is False
    event = only_outcome(logs)
    assert event["runctx.outcome.status"] == "success"
    assert stats.snapshot()["errors.emit_outcome.duplicate"] == before + 1


def test_outcome_for_a_run_started_elsewhere_is_emitted_once(
    logs: InMemoryLogRecordExporter,
) -> None:
    remote = RunContext.create("remote", event_id="T-12", customer_id="acme")
    token = set_run_context(remote)
    try:
        assert emit_outcome("success") is True
        assert emit_outcome("success") is False
    finally:
        reset_run_context(token)
    event = only_outcome(logs)
    assert event["runctx.run_id"] == remote.run_id
    assert "runctx.outcome.duration_ms" not in event


def test_emit_outcome_outside_a_run_raises() -> None:
    with pytest.raises(NoRunContextError):
        emit_outcome("success")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"status": "fine"}, "status must be a RunStatus"),
        ({"status": "success", "confidence": 1.5}, "between 0 and 1"),
        ({"status": "success", "confidence": -0.1}, "between 0 and 1"),
        ({"status": "success", "value_amount": math.nan}, "finite"),
        ({"status": "success", "value_amount": math.inf}, "finite"),
        ({"status": "success", "value_amount": True}, "must be a number"),
        ({"status": "success", "value_amount": "3"}, "must be a number"),
        ({"status": "success", "reason": "x" * 2000}, "limit is 1024"),
        ({"status": "success", "value_type": ""}, "must not be empty"),
        ({"status": "success", "metadata": {"k": object()}}, "has a object"),
        ({"status": "success", "metadata": {"k": [1, "a"]}}, "mixes types"),
        ({"status": "success", "metadata": {"bad key": 1}}, "metadata key"),
        ({"status": "success", "metadata": {f"k{i}": i for i in range(40)}}, "more than 32"),
        ({"status": "success", "metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "deeper"),
        ({"status": "success", "metadata": {"k": "x" * 5000}}, "longer than 1024"),
    ],
)
def test_bad_arguments_raise_value_error_at_the_call(
    logs: InMemoryLogRecordExporter, arguments: dict[str, Any], message: str
) -> None:
    with run("ticket", event_id="T-13", customer_id="acme"):
        with pytest.raises(ValueError, match=message):
            emit_outcome(**arguments)
        # A rejected call records nothing, so the run still ends with its automatic outcome.
    assert only_outcome(logs)["runctx.outcome.automatic"] is True


# -- exactly once, bounded ----------------------------------------------------------------------


async def test_exactly_one_outcome_per_run_under_1000_concurrent_runs(
    logs: InMemoryLogRecordExporter,
) -> None:
    async def job(i: int) -> str:
        async with run("burst", event_id=f"E-{i}", customer_id=f"c{i % 7}") as ctx:
            await asyncio.sleep(0)
            if i % 3 == 0:
                emit_outcome("success", value_amount=i)
            if i % 5 == 0:
                emit_outcome("partial")  # rejected when i % 3 == 0, recorded otherwise
            await asyncio.sleep(0)
            if i % 7 == 0:
                raise ValueError(i)
            return ctx.run_id

    results = await asyncio.gather(*(job(i) for i in range(1000)), return_exceptions=True)
    assert sum(isinstance(r, ValueError) for r in results) == len(range(0, 1000, 7))
    per_run = Counter(attributes_of(r)["runctx.run_id"] for r in outcome_records(logs))
    assert len(per_run) == 1000
    assert set(per_run.values()) == {1}
    assert outcomes.live_run_count() == 0
    assert rollup.live_run_count() == 0


def test_exactly_one_outcome_per_run_across_threads(logs: InMemoryLogRecordExporter) -> None:
    run_ids: list[str] = []

    def worker(n: int) -> None:
        for i in range(50):
            with run("threaded", event_id=f"E-{n}-{i}", customer_id="c") as ctx:
                run_ids.append(ctx.run_id)
                if i % 2:
                    emit_outcome("success")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_run = Counter(attributes_of(r)["runctx.run_id"] for r in outcome_records(logs))
    assert per_run == Counter(run_ids)
    assert set(per_run.values()) == {1}
    assert outcomes.live_run_count() == 0


# -- metrics ------------------------------------------------------------------------------------


def test_runs_counter_and_duration_histogram_by_workflow_and_status(
    logs: InMemoryLogRecordExporter, metric_reader: InMemoryMetricReader
) -> None:
    with run("metered", event_id="M-1", customer_id="acme"):
        pass
    with pytest.raises(ValueError):
        with run("metered", event_id="M-2", customer_id="acme"):
            raise ValueError
    data = metric_reader.get_metrics_data()
    assert data is not None
    points: dict[str, list[Any]] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points[metric.name] = list(metric.data.data_points)
    counts = {p.attributes["runctx.outcome.status"]: p.value for p in points["runctx.runs"]}
    assert counts == {"success": 1, "failure": 1}
    for point in points["runctx.runs"] + points["runctx.run.duration"]:
        assert point.attributes["runctx.workflow"] == "metered"
        assert "runctx.customer_id" not in point.attributes
    assert sum(p.count for p in points["runctx.run.duration"]) == 2


def test_run_metric_series_are_capped_with_one_overflow_series(
    metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_runctx.metrics import SeriesCap

    monkeypatch.setattr(outcome_delivery, "_cap", SeriesCap(5))
    monkeypatch.setattr(outcome_delivery, "_cap_for", outcome_delivery._instruments)
    for index in range(50):
        with run(f"workflow-{index}", event_id="e", customer_id="c"):
            pass
    data = metric_reader.get_metrics_data()
    assert data is not None
    found = [m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    assert {m.name for m in found} >= {"runctx.runs", "runctx.run.duration"}
    for metric in found:
        points = list(metric.data.data_points)
        assert len(points) == 6, metric.name  # the cap + the overflow series
        overflow = [p for p in points if dict(p.attributes or {}) == {"otel.metric.overflow": True}]
        assert len(overflow) == 1
        if metric.name == "runctx.runs":
            assert overflow[0].value == 45


def test_admitted_series_are_remembered_and_overflow_is_counted_every_time(
    metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admitted dimension sets are remembered per cap, so a repeated workflow skips the cap's
    check; an overflowed one is checked, and counted as metrics.series_overflow, every run."""
    from otel_runctx.metrics import SeriesCap

    monkeypatch.setattr(outcome_delivery, "_cap", SeriesCap(2))
    monkeypatch.setattr(outcome_delivery, "_cap_for", outcome_delivery._instruments)
    overflow_before = stats.snapshot().get("metrics.series_overflow", 0)
    for name in ("a", "b", "c", "c", "a", "b", "a"):
        with run(name, event_id="e", customer_id="c"):
            pass
    assert stats.snapshot().get("metrics.series_overflow", 0) == overflow_before + 2
    assert {key[0] for key in outcome_delivery._admitted} == {"a", "b"}
    data = metric_reader.get_metrics_data()
    assert data is not None
    runs = next(
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "runctx.runs"
    )
    by_workflow = {
        dict(p.attributes or {}).get("runctx.workflow", "overflow"): p.value
        for p in runs.data.data_points
    }
    assert by_workflow == {"a": 3, "b": 2, "overflow": 2}


def test_the_shared_automatic_success_has_the_attributes_any_equal_outcome_has() -> None:
    """Its attributes are written out for speed; an equal outcome built anew takes the general
    path, and both must give the same mapping (a fresh dict each time: callers add to it)."""
    twin = Outcome(status=RunStatus.SUCCESS, automatic=True)
    assert twin == AUTOMATIC_SUCCESS and twin is not AUTOMATIC_SUCCESS
    first = AUTOMATIC_SUCCESS.to_attributes()
    assert first == twin.to_attributes()
    first["added"] = 1
    assert "added" not in AUTOMATIC_SUCCESS.to_attributes()
