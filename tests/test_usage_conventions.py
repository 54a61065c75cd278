"""Usage from every common token convention, counted once when spans nest, priced exactly."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from otel_runctx import run
from otel_runctx import runs as runs_module
from otel_runctx import settings as runctx_settings
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from otel_runctx.usage import read_llm_usage
from tests.test_outcomes import only_outcome


@pytest.fixture
def tracer() -> Tracer:
    private = TracerProvider()
    private.add_span_processor(RunContextSpanProcessor())
    private.add_span_processor(UsageRollupProcessor())
    return private.get_tracer("conventions")


def span_with(tracer: Tracer, attributes: Mapping[str, Any], name: str = "llm") -> None:
    with tracer.start_as_current_span(name, attributes=dict(attributes)):
        pass


CONVENTIONS = {
    "gen_ai current (openai-v2)": {
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.system": "openai",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 20,
    },
    "gen_ai older prompt/completion": {
        "gen_ai.request.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 120,
        "gen_ai.usage.completion_tokens": 30,
    },
    "OpenInference": {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-2024-08-06",
        "llm.provider": "openai",
        "llm.token_count.prompt": 120,
        "llm.token_count.completion": 30,
        "llm.token_count.total": 150,
        "llm.token_count.prompt_details.cache_read": 20,
    },
    "Traceloop/OpenLLMetry": {
        "traceloop.span.kind": "llm",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 120,
        "gen_ai.usage.completion_tokens": 30,
        "gen_ai.usage.cache_read_input_tokens": 20,
        "llm.usage.total_tokens": 150,
    },
    "OpenLLMetry llm.usage.*": {
        "llm.request.model": "gpt-4o",
        "llm.response.model": "gpt-4o-2024-08-06",
        "llm.usage.prompt_tokens": 120,
        "llm.usage.completion_tokens": 30,
    },
}


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_each_convention_is_read_with_the_response_model(
    name: str, tracer: Tracer, logs: InMemoryLogRecordExporter
) -> None:
    attributes = CONVENTIONS[name]
    with run("agent", event_id="E", customer_id="c"):
        span_with(tracer, attributes)
    event = only_outcome(logs)
    assert event["runctx.usage.llm_calls"] == 1
    assert event["runctx.usage.input_tokens"] == 120
    assert event["runctx.usage.output_tokens"] == 30
    assert tuple(event["runctx.usage.models"]) == ("gpt-4o-2024-08-06",)
    cached = 20 if any("cache" in key for key in attributes) else 0
    assert event["runctx.usage.cache_read_tokens"] == cached
    # The cost is genai-prices' own calculation for the same usage, to the last digit.
    expected = calc_price(
        Usage(input_tokens=120, output_tokens=30, cache_read_tokens=cached or None),
        "gpt-4o-2024-08-06",
        provider_id="openai",
    ).total_price
    assert Decimal(event["runctx.usage.cost_decimal"]) == expected
    assert event["runctx.usage.cost"] == float(expected)
    assert tuple(event["runctx.usage.cost_source_by_model"]) == ("genai-prices",)


def test_a_total_only_span_is_counted_but_not_priced() -> None:
    usage = read_llm_usage({"llm.usage.total_tokens": 42, "gen_ai.request.model": "gpt-4o"})
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.unsplit_tokens) == (0, 0, 42)
    assert read_llm_usage({"http.method": "GET"}) is None


def test_framework_and_provider_spans_reporting_the_same_tokens_count_once(
    tracer: Tracer, logs: InMemoryLogRecordExporter
) -> None:
    provider_span = CONVENTIONS["gen_ai current (openai-v2)"]
    with run("agent", event_id="E", customer_id="c"):
        # agent (reports the sum) > chain (reports the sum) > two LLM calls (report their own)
        with tracer.start_as_current_span(
            "agent",
            attributes={
                "openinference.span.kind": "AGENT",
                "llm.token_count.prompt": 240,
                "llm.token_count.completion": 60,
            },
        ):
            with tracer.start_as_current_span(
                "chain",
                attributes={
                    "traceloop.span.kind": "workflow",
                    "gen_ai.usage.input_tokens": 240,
                    "gen_ai.usage.output_tokens": 60,
                },
            ):
                span_with(tracer, provider_span, "chat 1")
                span_with(tracer, provider_span, "chat 2")
        # A framework span with no instrumented call below it counts (it is the innermost).
        span_with(tracer, {"llm.model_name": "gpt-4o", "llm.token_count.prompt": 5}, "solo")
    event = only_outcome(logs)
    assert event["runctx.usage.llm_calls"] == 3
    assert event["runctx.usage.input_tokens"] == 245
    assert event["runctx.usage.output_tokens"] == 60
    assert event["runctx.usage.nested_skipped"] == 2


def test_two_instrumentations_of_one_call_count_once(
    tracer: Tracer, logs: InMemoryLogRecordExporter
) -> None:
    # openai-v2 and OpenInference both wrap the client method: one span nests in the other.
    with run("agent", event_id="E", customer_id="c"):
        with tracer.start_as_current_span(
            "ChatCompletion", attributes=CONVENTIONS["OpenInference"]
        ):
            span_with(tracer, CONVENTIONS["gen_ai current (openai-v2)"], "chat gpt-4o")
    event = only_outcome(logs)
    assert (event["runctx.usage.llm_calls"], event["runctx.usage.input_tokens"]) == (1, 120)


def test_a_child_run_below_a_framework_span_is_not_counted_twice(
    tracer: Tracer, logs: InMemoryLogRecordExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run root spans from the same provider as the rest, as in an app (one provider).
    monkeypatch.setattr(runs_module.trace, "get_tracer", lambda *args, **kwargs: tracer)
    monkeypatch.setattr(runs_module, "_tracer_for", None)  # run() caches its tracer per provider
    with run("agent", event_id="E", customer_id="c"):
        with tracer.start_as_current_span("agent", attributes={"llm.token_count.prompt": 120}):
            with run("sub"):
                span_with(tracer, CONVENTIONS["OpenInference"])
    from tests.test_outcomes import outcome_records

    events = [dict(r.log_record.attributes or {}) for r in outcome_records(logs)]
    assert sum(e["runctx.usage.input_tokens"] for e in events) == 120


@pytest.fixture
def local_prices(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps({"models": {"gpt-4o": {"input": 1.0, "output": 2.0, "cache_read": 0.5}}})
    )
    runctx_settings.reload_settings({"OTEL_RUNCTX_PRICES": str(path)})
    yield path
    runctx_settings.reload_settings()


def test_a_local_price_overrides_genai_prices_per_model_and_unknowns_are_listed(
    tracer: Tracer, logs: InMemoryLogRecordExporter, local_prices: Path
) -> None:
    with run("agent", event_id="E", customer_id="c"):
        # dated response model: matched to the local "gpt-4o" by dropping the date suffix
        span_with(tracer, CONVENTIONS["gen_ai current (openai-v2)"])
        span_with(
            tracer,
            {
                "gen_ai.system": "anthropic",
                "gen_ai.response.model": "claude-3-5-haiku-20241022",
                "gen_ai.usage.input_tokens": 1000,
                "gen_ai.usage.output_tokens": 100,
            },
        )
        span_with(tracer, {"gen_ai.request.model": "in-house-7b", "gen_ai.usage.input_tokens": 9})
    event = only_outcome(logs)
    models = tuple(event["runctx.usage.models"])
    assert models == ("claude-3-5-haiku-20241022", "gpt-4o-2024-08-06", "in-house-7b")
    sources = tuple(event["runctx.usage.cost_source_by_model"])
    assert sources == ("genai-prices", "local", "unpriced")
    local = (Decimal(100) * Decimal("1.0") + 20 * Decimal("0.5") + 30 * Decimal("2.0")) / 10**6
    anthropic = calc_price(
        Usage(input_tokens=1000, output_tokens=100),
        "claude-3-5-haiku-20241022",
        provider_id="anthropic",
    ).total_price
    assert Decimal(event["runctx.usage.cost_decimal"]) == local + anthropic
    assert tuple(event["runctx.usage.cost_unpriced_models"]) == ("in-house-7b",)
    assert tuple(event["runctx.usage.providers"]) == ("anthropic", "openai", "")


def test_a_run_without_tokens_is_priced_without_importing_genai_prices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token-less run reports cost 0 when genai-prices is installed, but only asks whether
    it is installed: importing it (pydantic and all) at the end of such a run stalled the
    caller's thread. A run with tokens still imports it to price them."""
    from otel_runctx.usage import pricing
    from otel_runctx.usage.attributes import usage_attributes
    from otel_runctx.usage.rollup import RunUsage

    imports: list[bool] = []
    real = pricing._genai_prices

    def counted() -> Any:
        imports.append(True)
        return real()

    monkeypatch.setattr(pricing, "_catalog", None)
    monkeypatch.setattr(pricing, "_installed", None)
    monkeypatch.setattr(pricing, "_genai_prices", counted)
    attributes = usage_attributes(RunUsage(span_count=1))
    assert imports == []
    assert attributes["runctx.usage.cost"] == 0.0
    assert attributes["runctx.usage.cost_decimal"] == "0"
    assert attributes["runctx.usage.cost_currency"] == "USD"
    with_tokens = RunUsage(span_count=1)
    with_tokens.add_tokens("gpt-4o-mini", 1000, 100)
    assert usage_attributes(with_tokens)["runctx.usage.cost"] > 0
    assert imports


@settings(max_examples=200, deadline=None)
@given(
    span_count=st.integers(0, 10_000),
    error_count=st.integers(0, 10_000),
    llm_calls=st.integers(0, 50),
    nested_skipped=st.integers(0, 5),
    sampled_out=st.integers(0, 5),
    table=st.sampled_from([None, "EUR"]),
    use_catalog=st.booleans(),
)
def test_token_less_shortcut_gives_the_general_paths_attributes(
    span_count: int,
    error_count: int,
    llm_calls: int,
    nested_skipped: int,
    sampled_out: int,
    table: str | None,
    use_catalog: bool,
) -> None:
    """Most runs see no tokens; their usage attributes come from a shortcut that skips the
    per-model columns and the Decimal sum. It must give exactly what the general path gives."""
    from otel_runctx.usage import attributes as usage_module
    from otel_runctx.usage.prices import parse_price_table
    from otel_runctx.usage.rollup import RunUsage

    usage = RunUsage(span_count=span_count)
    usage.error_count, usage.llm_calls = error_count, llm_calls
    usage.nested_skipped, usage.sampled_out = nested_skipped, sampled_out
    prices = None
    if table is not None:
        prices = parse_price_table(
            {"currency": table, "models": {"m-1": {"input": 1.0, "output": 2.0}}}
        )
    shortcut = usage_module._without_tokens(usage, prices, use_catalog)
    general = usage_module._with_tokens(usage, prices, use_catalog)
    assert list(shortcut.items()) == list(general.items())
    assert usage_module.usage_attributes(usage, prices, use_catalog=use_catalog) == shortcut
