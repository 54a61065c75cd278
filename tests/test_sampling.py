"""Run-consistent sampling: whole runs kept or dropped by root_run_id alone; usage stays exact."""

from __future__ import annotations

import hashlib
import importlib.metadata
import random
from collections.abc import Iterator

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    TraceIdRatioBased,
)
from opentelemetry.trace import Tracer

from otel_runctx import generate_run_id, run
from otel_runctx import runs as runs_module
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from otel_runctx.sampling import (
    RunConsistentSampler,
    coverage_of,
    run_is_kept,
    runctx_ratio_sampler,
)
from tests.test_outcomes import attributes_of, outcome_records


def test_the_decision_is_a_pure_function_of_root_run_id() -> None:
    # Pinned formula: blake2b-64 of the id, big-endian, below p * 2**64. Any process (or
    # language) that computes this makes the same decision for the same run.
    for _ in range(200):
        root = generate_run_id()
        digest = int.from_bytes(hashlib.blake2b(root.encode(), digest_size=8).digest(), "big")
        assert run_is_kept(root, 0.3) == (digest < int(0.3 * 2**64))
        assert RunConsistentSampler(0.3)._decisions.get(root) is None  # fresh instance
    roots = [generate_run_id() for _ in range(20_000)]
    kept = sum(run_is_kept(root, 0.1) for root in roots)
    assert 1_700 < kept < 2_300  # ~10%, far from 0 and from 100%
    assert all(run_is_kept(root, 1.0) for root in roots[:100])
    assert not any(run_is_kept(root, 0.0) for root in roots[:100])
    # Keeping more never drops a run kept at a lower probability (nested keep sets).
    assert all(run_is_kept(root, 0.5) for root in roots if run_is_kept(root, 0.1))


@pytest.fixture
def sampled(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Tracer, InMemorySpanExporter, list[str]]]:
    """A provider with RunConsistentSampler(0.1), our processors and an exporter; run root
    spans come from it too, and the global provider reports its sampler (what outcomes read)."""
    sampler = RunConsistentSampler(0.1)
    private = TracerProvider(sampler=sampler)
    private.add_span_processor(RunContextSpanProcessor())
    private.add_span_processor(UsageRollupProcessor())
    exporter = InMemorySpanExporter()
    private.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = private.get_tracer("sampled")
    use_provider(provider, private, monkeypatch)
    yield tracer, exporter, []


def use_provider(
    global_provider: TracerProvider, private: TracerProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run root spans from ``private``; the global provider says it samples like ``private``.

    (SDK 1.45 caches one Tracer per scope, with the sampler it had then, so patching the
    global provider's sampler alone would not reach run root spans.)"""
    monkeypatch.setattr(global_provider, "sampler", private.sampler)
    monkeypatch.setattr(
        runs_module.trace, "get_tracer", lambda name, *a, **k: private.get_tracer(name)
    )
    monkeypatch.setattr(runs_module, "_tracer_for", None)  # run() caches its tracer per provider


def test_a_run_is_kept_or_dropped_whole_and_its_usage_is_exact_at_any_rate(
    sampled: tuple[Tracer, InMemorySpanExporter, list[str]], logs: InMemoryLogRecordExporter
) -> None:
    tracer, exporter, _ = sampled
    runs = []
    for i in range(200):
        with run("agent", event_id=f"E-{i}", customer_id=f"c{i % 3}") as ctx:
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attribute("gen_ai.usage.input_tokens", 100)
                span.set_attribute("gen_ai.usage.output_tokens", 7)
            # A span that starts a new trace (queue hop, link) inside the run.
            with tracer.start_as_current_span("queue.consume", context=otel_context.Context()):
                pass
        runs.append(ctx)
    events = [attributes_of(r) for r in outcome_records(logs)]
    assert len(events) == 200  # outcomes are never sampled away
    assert sum(e["runctx.usage.input_tokens"] for e in events) == 20_000
    assert sum(e["runctx.usage.output_tokens"] for e in events) == 1_400
    assert all(e["runctx.usage.complete"] is True for e in events)
    assert all(e["runctx.sample.probability"] == 0.1 for e in events)
    exported: dict[str, set[str]] = {}
    for span in exporter.get_finished_spans():
        assert span.attributes is not None
        exported.setdefault(str(span.attributes["runctx.run_id"]), set()).add(span.name)
    kept = {ctx.run_id for ctx in runs if run_is_kept(ctx.root_run_id, 0.1)}
    assert 0 < len(kept) < 200
    assert set(exported) == kept  # no run partly kept
    assert all(
        names == {"run agent", "chat gpt-4o", "queue.consume"} for names in exported.values()
    )


def test_outside_a_run_it_samples_like_parent_based_trace_id_ratio() -> None:
    ours, stock = RunConsistentSampler(0.25), ParentBased(TraceIdRatioBased(0.25))
    rng = random.Random(7)
    for _ in range(2_000):
        trace_id = rng.getrandbits(128)
        assert (
            ours.should_sample(None, trace_id, "x").decision
            == stock.should_sample(None, trace_id, "x").decision
        )


def test_spans_of_a_dropped_run_that_may_carry_tokens_are_recorded_not_sampled() -> None:
    # Was: every span of a dropped run is RECORD_ONLY. Now (sampled_out_spans="llm", the
    # default) only spans that may carry LLM usage are: a span without start attributes may
    # (it can get tokens before it ends), a protocol span cannot and is DROPped (see
    # tests/test_sampled_out_spans.py); "all" keeps the old rule.
    sampler = RunConsistentSampler(0.0)
    everything = RunConsistentSampler(0.0, sampled_out_spans="all")
    http = {"http.request.method": "GET"}
    with run("agent", event_id="E", customer_id="c"):
        assert sampler.should_sample(None, 1, "span").decision is Decision.RECORD_ONLY
        assert sampler.should_sample(None, 1, "GET", attributes=http).decision is Decision.DROP
        for attributes in (None, http):
            result = everything.should_sample(None, 1, "span", attributes=attributes)
            assert result.decision is Decision.RECORD_ONLY


def test_the_stock_ratio_sampler_undercounts_and_says_so(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch, logs: InMemoryLogRecordExporter
) -> None:
    # The measurement, pinned: ParentBased(TraceIdRatioBased(0.1)) DROPs unsampled
    # traces, so the roll-up never sees their spans.
    sampler = ParentBased(TraceIdRatioBased(0.1))
    private = TracerProvider(sampler=sampler)
    private.add_span_processor(RunContextSpanProcessor())
    private.add_span_processor(UsageRollupProcessor())
    tracer = private.get_tracer("stock")
    use_provider(provider, private, monkeypatch)
    for i in range(200):
        with run("agent", event_id=f"E-{i}", customer_id="c"):
            with tracer.start_as_current_span("chat") as span:
                span.set_attribute("gen_ai.usage.input_tokens", 100)
    events = [attributes_of(r) for r in outcome_records(logs)]
    assert len(events) == 200
    total = sum(e["runctx.usage.input_tokens"] for e in events)
    assert total < 20_000
    # A DROPping sampler can lose any span of a run (a new trace inside it, a remote parent),
    # and nothing tells the roll-up: no outcome claims its usage is complete.
    assert all(e["runctx.usage.complete"] is False for e in events)
    assert all(e["runctx.sample.probability"] == 0.1 for e in events)


def test_coverage_of_common_samplers() -> None:
    assert coverage_of(RunConsistentSampler(0.01)).usage_complete(False)
    assert coverage_of(ALWAYS_ON).usage_complete(False)
    assert coverage_of(ParentBased(ALWAYS_ON)).usage_complete(True)
    assert not coverage_of(ParentBased(ALWAYS_ON)).usage_complete(False)
    assert not coverage_of(ParentBased(TraceIdRatioBased(0.5))).usage_complete(True)
    assert coverage_of(TraceIdRatioBased(0.5)).probability == 0.5
    assert coverage_of(None).probability is None


def test_the_entry_point_reads_the_sampler_argument() -> None:
    (point,) = [
        p
        for p in importlib.metadata.entry_points(group="opentelemetry_traces_sampler")
        if p.name == "runctx_ratio"
    ]
    factory = point.load()
    assert factory("0.25").probability == 0.25
    assert factory(None).probability == 1.0
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG"):
        factory("lots")
    with pytest.raises(ValueError, match="between 0 and 1"):
        runctx_ratio_sampler("1.5")


def test_the_sdk_configurator_builds_it_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry.sdk._configuration import _import_sampler

    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
    sampler = _import_sampler("runctx_ratio")
    assert isinstance(sampler, RunConsistentSampler)
    assert sampler.probability == 0.01
