"""The usage roll-up: exact token totals per run and model, cost from a price table, bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode, Tracer

from otel_runctx import run, stats
from otel_runctx import settings as runctx_settings
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from otel_runctx.settings import ConfigError
from otel_runctx.usage import rollup
from otel_runctx.usage.prices import load_price_table, parse_price_table
from tests.test_outcomes import attributes_of, only_outcome, outcome_records


@pytest.fixture
def tracer(provider: TracerProvider) -> Tracer:
    """A tracer whose spans reach the roll-up; processors live on a private provider.

    The run's root span comes from the global provider (conftest), the LLM spans from this one;
    both carry ``runctx.run_id``, which is all the roll-up reads.
    """
    private = TracerProvider()
    private.add_span_processor(RunContextSpanProcessor())
    private.add_span_processor(UsageRollupProcessor())
    return private.get_tracer("fake-llm")


@pytest.fixture
def prices(tmp_path: Path) -> Iterator[Path]:
    """A JSON price table named by OTEL_RUNCTX_PRICES for the test."""
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "currency": "EUR",
                "per": "1M",
                "models": {
                    "gpt-big": {"input": 2.0, "output": 8.0},
                    "small": {"per": "1K", "input": 0.001, "output": 0.002},
                },
            }
        )
    )
    runctx_settings.reload_settings({"OTEL_RUNCTX_PRICES": str(path)})
    yield path
    runctx_settings.reload_settings()


def llm_call(tracer: Tracer, model: str, tokens_in: Any, tokens_out: Any, ok: bool = True) -> None:
    with tracer.start_as_current_span("chat") as span:
        span.set_attribute("gen_ai.request.model", model)
        span.set_attribute("gen_ai.usage.input_tokens", tokens_in)
        span.set_attribute("gen_ai.usage.output_tokens", tokens_out)
        if not ok:
            span.set_status(Status(StatusCode.ERROR))


def test_token_totals_by_model_are_exact(logs: InMemoryLogRecordExporter, tracer: Tracer) -> None:
    with run("agent", event_id="U-1", customer_id="acme"):
        llm_call(tracer, "gpt-big", 1200, 300)
        llm_call(tracer, "small", 50, 7)
        llm_call(tracer, "gpt-big", 800, 200, ok=False)
        with tracer.start_as_current_span("tool"):
            pass
    event = only_outcome(logs)
    assert event["runctx.usage.span_count"] == 5  # 4 spans + the root span
    assert event["runctx.usage.error_count"] == 1
    assert event["runctx.usage.llm_calls"] == 3
    assert event["runctx.usage.input_tokens"] == 2050
    assert event["runctx.usage.output_tokens"] == 507
    assert tuple(event["runctx.usage.models"]) == ("gpt-big", "small")
    assert tuple(event["runctx.usage.input_tokens_by_model"]) == (2000, 50)
    assert tuple(event["runctx.usage.output_tokens_by_model"]) == (500, 7)
    # No local price table; genai-prices (dev extra) does not know these made-up models.
    assert event["runctx.usage.cost"] == 0.0
    assert tuple(event["runctx.usage.cost_source_by_model"]) == ("unpriced", "unpriced")
    assert tuple(event["runctx.usage.cost_unpriced_models"]) == ("gpt-big", "small")


def test_cost_from_a_json_price_table(
    logs: InMemoryLogRecordExporter, tracer: Tracer, prices: Path
) -> None:
    with run("agent", event_id="U-2", customer_id="acme"):
        llm_call(tracer, "gpt-big", 1_000_000, 500_000)  # 2.00 + 4.00
        llm_call(tracer, "small", 2_000, 1_000)  # 0.002 + 0.002
        llm_call(tracer, "mystery", 10, 10)
    event = only_outcome(logs)
    assert event["runctx.usage.cost_currency"] == "EUR"
    assert event["runctx.usage.cost"] == pytest.approx(6.004)
    assert tuple(event["runctx.usage.cost_by_model"]) == pytest.approx((6.0, 0.0, 0.004))
    assert tuple(event["runctx.usage.cost_unpriced_models"]) == ("mystery",)


def test_toml_price_table_per_1k(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text('per = "1K"\n[models."m"]\ninput = 0.5\noutput = 1.5\n')
    price = load_price_table(path).price_of("m")
    assert price is not None
    assert price.cost(2_000, 1_000) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "top level"),
        ({"models": {}}, "non-empty"),
        ({"models": {"m": {"input": 1}}}, "models.m.output must be a number"),
        ({"models": {"m": {"input": -1, "output": 1}}}, "not negative"),
        ({"per": "1G", "models": {"m": {"input": 1, "output": 1}}}, "per must be one of"),
    ],
)
def test_bad_price_tables_are_config_errors(document: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_price_table(document)


def test_unreadable_price_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="OTEL_RUNCTX_PRICES"):
        load_price_table(tmp_path / "absent.json")


def test_child_run_tokens_count_for_the_child_only(
    logs: InMemoryLogRecordExporter, tracer: Tracer
) -> None:
    with run("parent", event_id="U-3", customer_id="acme") as parent:
        llm_call(tracer, "m", 10, 1)
        with run("child") as child:
            llm_call(tracer, "m", 100, 10)
    by_run = {attributes_of(r)["runctx.run_id"]: attributes_of(r) for r in outcome_records(logs)}
    assert by_run[parent.run_id]["runctx.usage.input_tokens"] == 10
    assert by_run[child.run_id]["runctx.usage.input_tokens"] == 100


def test_an_early_outcome_covers_the_whole_run(
    logs: InMemoryLogRecordExporter, tracer: Tracer
) -> None:
    from otel_runctx import emit_outcome

    with run("agent", event_id="U-4", customer_id="acme"):
        llm_call(tracer, "m", 10, 1)
        assert emit_outcome("success", value_amount=3)
        llm_call(tracer, "m", 99, 9)  # after the outcome: still the run's usage
    event = only_outcome(logs)
    assert event["runctx.usage.input_tokens"] == 109
    assert event["runctx.usage.output_tokens"] == 10
    assert event["runctx.usage.final"] is True
    assert event["runctx.outcome.value_amount"] == 3
    assert event["runctx.outcome.automatic"] is False


def test_bad_token_values_are_counted_not_raised(
    logs: InMemoryLogRecordExporter, tracer: Tracer
) -> None:
    before = stats.snapshot().get("usage.bad_token_count", 0)
    with run("agent", event_id="U-5", customer_id="acme"):
        llm_call(tracer, "m", "many", 5)
        llm_call(tracer, "m", -3, 5)
        llm_call(tracer, "m", 4.0, 1)
    event = only_outcome(logs)
    assert event["runctx.usage.input_tokens"] == 4
    assert event["runctx.usage.output_tokens"] == 11
    assert stats.snapshot()["usage.bad_token_count"] == before + 2


def test_aggregates_are_freed_and_late_spans_ignored(
    logs: InMemoryLogRecordExporter, tracer: Tracer
) -> None:
    with run("agent", event_id="U-6", customer_id="acme") as ctx:
        late = tracer.start_span("still running")
    assert rollup.live_run_count() == 0
    late.set_attribute("gen_ai.usage.input_tokens", 5)
    late.end()  # its run is over: not counted, and no aggregate comes back to life
    assert rollup.live_run_count() == 0
    assert rollup.snapshot_run(ctx.run_id) is None


def test_models_per_run_are_capped(logs: InMemoryLogRecordExporter, tracer: Tracer) -> None:
    with run("agent", event_id="U-7", customer_id="acme"):
        for i in range(rollup.MAX_MODELS_PER_RUN + 5):
            llm_call(tracer, f"model-{i:03d}", 1, 1)
    event = only_outcome(logs)
    assert len(event["runctx.usage.models"]) == rollup.MAX_MODELS_PER_RUN + 1
    assert rollup.OTHER_MODEL in event["runctx.usage.models"]
    assert event["runctx.usage.input_tokens"] == rollup.MAX_MODELS_PER_RUN + 5


def test_a_broken_price_file_is_reported_once_and_outcomes_still_flow(
    logs: InMemoryLogRecordExporter, tracer: Tracer, tmp_path: Path
) -> None:
    broken = tmp_path / "prices.json"
    broken.write_text("{not json")
    runctx_settings.reload_settings({"OTEL_RUNCTX_PRICES": str(broken)})
    before = stats.snapshot().get("errors.outcome.prices", 0)
    try:
        for i in range(3):
            with run("agent", event_id=f"U-8-{i}", customer_id="acme"):
                llm_call(tracer, "m", 10, 1)
    finally:
        runctx_settings.reload_settings()
    events = [attributes_of(r) for r in outcome_records(logs)]
    assert len(events) == 3
    assert stats.snapshot()["errors.outcome.prices"] == before + 1  # read and reported once
    assert all("runctx.usage.cost" not in e for e in events)
    assert [e["runctx.usage.input_tokens"] for e in events] == [10, 10, 10]
