"""Lean export: which run attributes each span and log record carries (OTEL_RUNCTX_SPAN_ATTRIBUTES).

By default a span or log record carries the five fields per-span queries filter and group by
(run, event, customer, tenant, workflow); the run's root span and its outcome event carry the
full set, so lineage, attempt, deadline and environment are still there once per run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import RunContext, run
from otel_runctx.processors import RunContextLogProcessor
from otel_runctx.settings import ConfigError, load_settings, reload_settings
from tests.stamping_helpers import by_name, runctx_attributes, stamped_tracer

LEAN = {
    "runctx.run_id",
    "runctx.event_id",
    "runctx.customer_id",
    "runctx.tenant_id",
    "runctx.workflow",
}
Choose = Callable[[str], None]
FULL_ONLY = {
    "runctx.root_run_id",
    "runctx.parent_run_id",
    "runctx.attempt",
    "runctx.environment",
    "runctx.deadline",
}


@pytest.fixture
def span_attributes() -> Iterator[Choose]:
    """Set OTEL_RUNCTX_SPAN_ATTRIBUTES for one test (through settings), restored after."""

    def choose(value: str) -> None:
        reload_settings({"OTEL_RUNCTX_SPAN_ATTRIBUTES": value})

    yield choose
    reload_settings()


def _nested_run_spans() -> tuple[dict[str, dict[str, object]], RunContext]:
    tracer, exporter = stamped_tracer()
    with run("job", event_id="e-1", customer_id="c-1", tenant_id="t-1", deadline_seconds=60):
        with run("child") as child, tracer.start_as_current_span("work"):
            pass
    spans = by_name(exporter.get_finished_spans())
    return {name: runctx_attributes(span) for name, span in spans.items()}, child


def _log_record_attributes() -> dict[str, object]:
    exporter = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(RunContextLogProcessor())
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = logging.getLogger("test.span_attributes")
    logger.propagate = False
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        with run("job", event_id="e-1", customer_id="c-1"), run("child"):
            logger.warning("inside")
    finally:
        logger.removeHandler(handler)
    (record,) = exporter.get_finished_logs()
    return {
        k: v for k, v in (record.log_record.attributes or {}).items() if k.startswith("runctx.")
    }


def test_by_default_spans_carry_the_lean_set_and_the_root_span_the_full_one(
    spans: InMemorySpanExporter,
) -> None:
    attributes, child = _nested_run_spans()
    assert set(attributes["work"]) == LEAN
    assert attributes["work"] == {key: child.to_span_attributes()[key] for key in LEAN}
    # Root spans come from run() itself, through the global provider (tests/conftest.py).
    root = runctx_attributes(by_name(spans.get_finished_spans())["run child"])
    assert set(root) >= FULL_ONLY
    assert root["runctx.parent_run_id"] == child.parent_run_id


def test_by_default_log_records_carry_the_lean_set() -> None:
    assert set(_log_record_attributes()) == LEAN - {"runctx.tenant_id"}


def test_full_restores_every_field_on_every_span_and_record(span_attributes: Choose) -> None:
    span_attributes("full")
    attributes, child = _nested_run_spans()
    assert attributes["work"] == dict(child.to_span_attributes())
    assert FULL_ONLY - {"runctx.deadline"} <= set(_log_record_attributes())


def test_a_field_list_picks_the_fields_and_always_keeps_the_run_id(span_attributes: Choose) -> None:
    span_attributes("attempt, runctx.environment,customer_id")
    attributes, child = _nested_run_spans()
    assert attributes["work"] == {
        "runctx.run_id": child.run_id,
        "runctx.customer_id": "c-1",
        "runctx.environment": child.environment,
        "runctx.attempt": 1,
    }


def test_an_unknown_field_stops_at_startup_with_the_accepted_names() -> None:
    with pytest.raises(ConfigError, match=r"OTEL_RUNCTX_SPAN_ATTRIBUTES.*unknown field.*customer"):
        load_settings({"OTEL_RUNCTX_SPAN_ATTRIBUTES": "run_id,custmer_id"})
    assert load_settings({"OTEL_RUNCTX_SPAN_ATTRIBUTES": " LEAN "}).span_attribute_keys == (
        load_settings({}).span_attribute_keys
    )


def test_the_stamp_set_follows_a_settings_reload_on_an_existing_run(
    span_attributes: Choose,
) -> None:
    ctx = RunContext.create("job", event_id="e", customer_id="c")
    assert set(ctx.to_stamp_attributes()) == LEAN - {"runctx.tenant_id"}
    span_attributes("full")
    assert ctx.to_stamp_attributes() == ctx.to_span_attributes()


def test_the_distro_puts_the_environment_on_the_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.resources import Resource

    from otel_runctx.distro.entry_points import DISTRO_DEFAULTS, apply_env_defaults

    for name, value in DISTRO_DEFAULTS.items():  # so the distro's setdefault is undone after
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OTEL_RUNCTX_ENVIRONMENT", "staging eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=payments")
    apply_env_defaults()
    assert Resource.create().attributes["deployment.environment.name"] == "staging eu"
    assert Resource.create().attributes["team"] == "payments"
    # A resource that already names an environment is the user's choice.
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod")
    apply_env_defaults()
    assert Resource.create().attributes["deployment.environment.name"] == "prod"
