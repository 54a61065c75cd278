"""RunContextLogProcessor with stdlib logging through the OTel logging handler users install."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs import LoggingHandler as SdkLoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from otel_runctx import RunContext, run, stats
from otel_runctx.processors import RunContextLogProcessor, _fast_stamp
from otel_runctx.processors import logs as logs_module


@pytest.fixture(params=["fast", "public"])
def adder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once with the guarded fast path and once with the public-API fallback."""
    chosen = (
        _fast_stamp.add_missing_fast if request.param == "fast" else _fast_stamp.add_missing_public
    )
    monkeypatch.setattr(_fast_stamp, "add_missing", chosen)
    return str(request.param)


def _otel_logger(
    limits: LogRecordLimits | None = None,
) -> tuple[logging.Logger, InMemoryLogRecordExporter, LoggingHandler]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(log_record_limits=limits, shutdown_on_exit=False)
    provider.add_log_record_processor(RunContextLogProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("test.stamping.logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    return logger, exporter, handler


@pytest.fixture
def otel_logger() -> Iterator[tuple[logging.Logger, InMemoryLogRecordExporter]]:
    """A stdlib logger whose records go through opentelemetry-instrumentation-logging's handler
    into a LoggerProvider with RunContextLogProcessor, then an in-memory exporter."""
    logger, exporter, handler = _otel_logger()
    try:
        yield logger, exporter
    finally:
        logger.removeHandler(handler)


def test_the_sdk_logging_handler_is_deprecated_in_favour_of_the_instrumentation_one() -> None:
    # Fact (SDK 1.45): constructing opentelemetry.sdk._logs.LoggingHandler warns and points at
    # opentelemetry-instrumentation-logging's handler, which is what these tests use. That handler
    # passes the current Context on each record, which is where the processor reads the run.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SdkLoggingHandler(logger_provider=LoggerProvider())
    assert any(
        issubclass(w.category, DeprecationWarning)
        and "opentelemetry-instrumentation-logging" in str(w.message)
        for w in caught
    )


def test_stdlib_log_records_in_a_run_carry_the_run(
    otel_logger: tuple[logging.Logger, InMemoryLogRecordExporter], adder: str
) -> None:
    logger, exporter = otel_logger
    with run("job", event_id="e", customer_id="cust-7") as ctx:
        logger.warning("inside", extra={"ticket": "T-1", "runctx.customer_id": "caller-set"})
        with run("child") as child:
            logger.info("in child")
    logger.warning("outside")
    inside, in_child, outside = (r.log_record for r in exporter.get_finished_logs())
    assert inside.attributes is not None and outside.attributes is not None
    assert in_child.attributes is not None
    assert inside.attributes["runctx.run_id"] == ctx.run_id
    assert inside.attributes["ticket"] == "T-1"
    # Attributes the record already has are kept.
    assert inside.attributes["runctx.customer_id"] == "caller-set"
    assert in_child.attributes["runctx.run_id"] == child.run_id
    # Lean by default: the lineage is on the child run's root span and outcome, not every record.
    assert in_child.attributes["runctx.workflow"] == "child"
    assert "runctx.parent_run_id" not in in_child.attributes
    assert not any(k.startswith("runctx.") for k in outside.attributes)


def test_log_records_are_stamped_from_upstream_baggage(
    otel_logger: tuple[logging.Logger, InMemoryLogRecordExporter], adder: str
) -> None:
    logger, exporter = otel_logger
    upstream = RunContext.create("upstream", event_id="e-up", customer_id="c-up")
    context = otel_context.get_current()
    for key, value in upstream.to_baggage_dict().items():
        context = baggage.set_baggage(key, value, context)
    token = otel_context.attach(context)
    try:
        logger.warning("downstream")
    finally:
        otel_context.detach(token)
    (record,) = (r.log_record for r in exporter.get_finished_logs())
    assert record.attributes is not None
    assert record.attributes["runctx.run_id"] == upstream.run_id
    assert record.attributes["runctx.customer_id"] == "c-up"


def test_a_failing_log_processor_never_reaches_the_logging_call(
    otel_logger: tuple[logging.Logger, InMemoryLogRecordExporter],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(context: object) -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(logs_module, "run_for", explode)
    logger, exporter = otel_logger
    before = stats.snapshot().get("errors.log_processor.on_emit", 0)
    with run("job", event_id="e", customer_id="c"):
        logger.warning("still logged")
    assert [r.log_record.body for r in exporter.get_finished_logs()] == ["still logged"]
    assert stats.snapshot()["errors.log_processor.on_emit"] == before + 1


def test_log_record_limits_apply_exactly_as_with_the_public_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    results = {}
    for name in ("fast", "public"):
        chosen = getattr(_fast_stamp, f"add_missing_{name}")
        monkeypatch.setattr(_fast_stamp, "add_missing", chosen)
        per_limit = []
        for limits in (
            # 3 evicts the (per-run random) run id on both paths, so the results compare equal.
            LogRecordLimits(max_log_record_attributes=3),
            LogRecordLimits(max_log_record_attribute_length=3),
        ):
            logger, exporter, handler = _otel_logger(limits)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the SDK warns about dropped attributes
                    with run("job", event_id="event-1", customer_id="customer-1"):
                        logger.warning("limited", extra={"user.a": "value"})
            finally:
                logger.removeHandler(handler)
            (record,) = exporter.get_finished_logs()
            per_limit.append(dict(record.log_record.attributes or {}))
        results[name] = per_limit
    assert results["fast"] == results["public"]
    count_limited, length_limited = results["fast"]
    assert len(count_limited) == 3
    assert length_limited["runctx.event_id"] == "eve"
