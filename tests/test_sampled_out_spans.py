"""Spans of a dropped run: recorded only when they may carry LLM usage (issue 14, goal 5).

RunConsistentSampler drops a run whole; in it, a protocol span (HTTP, database, ...) is DROPped
(no processor sees it, a fraction of the cost), a span that may carry tokens is RECORD_ONLY so
that the outcome's tokens and cost stay exact, and the outcome says how many spans the roll-up
did not see.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from otel_runctx import Budget, BudgetExceeded, run
from otel_runctx import settings as runctx_settings
from otel_runctx.processors import RunContextSpanProcessor, UsageRollupProcessor
from otel_runctx.sampling import RunConsistentSampler, runctx_ratio_sampler
from otel_runctx.sampling import sampler as sampler_module
from otel_runctx.sampling.llm_spans import may_carry_llm_usage
from otel_runctx.settings import ConfigError, load_settings
from otel_runctx.stats import snapshot
from tests.test_outcomes import only_outcome
from tests.test_sampling import use_provider

# What real instrumentations pass to start_span (checked in their sources, see llm_spans.py).
OPENAI_V2_CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.system": "openai",
    "gen_ai.request.model": "gpt-4o",
}
OPENAI_V2_LATEST = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}
OPENINFERENCE_OPENAI = {"openinference.span.kind": "LLM", "llm.system": "openai"}
OPENLLMETRY_OLDER = {"llm.request.type": "chat"}
TRACELOOP_TASK = {"traceloop.span.kind": "task", "traceloop.entity.name": "plan"}
HTTP_CLIENT = {"http.request.method": "POST", "url.full": "https://api.example/v1"}
HTTP_OLD = {"http.method": "GET", "http.url": "https://example/"}
DATABASE = {"db.system.name": "postgresql", "db.query.text": "SELECT 1"}
DATABASE_OLD = {"db.system": "redis"}
RPC = {"rpc.system": "grpc"}
MESSAGING = {"messaging.system": "kafka"}


class Seen(SpanProcessor):
    """Which spans any processor was shown (a DROPped span is shown to none)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span.name)


Pipeline = tuple[Tracer, InMemorySpanExporter, Seen]


def pipeline(
    sampler: RunConsistentSampler, global_provider: TracerProvider, mp: pytest.MonkeyPatch
) -> Pipeline:
    private = TracerProvider(sampler=sampler)
    private.add_span_processor(RunContextSpanProcessor())
    private.add_span_processor(UsageRollupProcessor())
    seen = Seen()
    private.add_span_processor(seen)
    exporter = InMemorySpanExporter()
    private.add_span_processor(SimpleSpanProcessor(exporter))
    use_provider(global_provider, private, mp)
    return private.get_tracer("app"), exporter, seen


@pytest.fixture
def dropped(provider: TracerProvider, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return pipeline(RunConsistentSampler(0.0), provider, monkeypatch)


@pytest.fixture
def kept(provider: TracerProvider, monkeypatch: pytest.MonkeyPatch) -> Pipeline:
    return pipeline(RunConsistentSampler(1.0), provider, monkeypatch)


@pytest.fixture
def settings_env() -> Iterator[None]:
    yield
    runctx_settings.reload_settings({})


def agent_run(tracer: Tracer, *, fail_http: bool = False) -> None:
    """One run: an HTTP call, an openai-v2 style LLM call (tokens at end), a DB query, and a
    hand-written step that starts without attributes and gets tokens later."""
    with run("agent", event_id="E", customer_id="c"):
        with tracer.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes=HTTP_CLIENT):
            if fail_http:
                trace.get_current_span().set_status(StatusCode.ERROR)
        with tracer.start_as_current_span(
            "chat gpt-4o", kind=SpanKind.CLIENT, attributes=OPENAI_V2_CHAT
        ) as llm:
            llm.set_attribute("gen_ai.usage.input_tokens", 100)
            llm.set_attribute("gen_ai.usage.output_tokens", 7)
        with tracer.start_as_current_span("SELECT", attributes=DATABASE):
            pass
        with tracer.start_as_current_span("summarise") as step:
            step.set_attribute("gen_ai.response.model", "small")
            step.set_attribute("gen_ai.usage.input_tokens", 10)
            step.set_attribute("gen_ai.usage.output_tokens", 1)


def test_start_attributes_of_real_instrumentations_are_classified_conservatively() -> None:
    for llm in (OPENAI_V2_CHAT, OPENAI_V2_LATEST, OPENINFERENCE_OPENAI, OPENLLMETRY_OLDER):
        assert may_carry_llm_usage(llm)
    assert may_carry_llm_usage(TRACELOOP_TASK)  # framework spans may report rolled-up tokens
    for protocol in (HTTP_CLIENT, HTTP_OLD, DATABASE, DATABASE_OLD, RPC, MESSAGING):
        assert not may_carry_llm_usage(protocol)
    # Unmarked spans may still get tokens: OpenInference's LangChain tracer starts its LLM
    # spans with no attributes and sets the kind and token counts at the end.
    assert may_carry_llm_usage(None)
    assert may_carry_llm_usage({})
    assert may_carry_llm_usage({"session.id": "s-1"})  # OpenInference context attributes
    # An LLM key wins over a protocol key (an instrumentation enriching an HTTP span).
    assert may_carry_llm_usage({**HTTP_CLIENT, "gen_ai.request.model": "gpt-4o"})


def test_a_protocol_span_of_a_dropped_run_is_dropped_and_no_processor_sees_it(
    dropped: Pipeline, logs: InMemoryLogRecordExporter
) -> None:
    tracer, exporter, seen = dropped
    with run("agent", event_id="E", customer_id="c"):
        span = tracer.start_span("GET", kind=SpanKind.CLIENT, attributes=HTTP_CLIENT)
        assert not span.is_recording()
        assert isinstance(span, trace.NonRecordingSpan)
        span.end()
    assert "GET" not in seen.started and "GET" not in seen.ended
    assert exporter.get_finished_spans() == ()  # a dropped run exports nothing


def test_llm_spans_of_a_dropped_run_are_recorded_and_their_tokens_reach_the_outcome(
    dropped: Pipeline, logs: InMemoryLogRecordExporter
) -> None:
    tracer, exporter, seen = dropped
    agent_run(tracer)
    assert seen.ended == ["chat gpt-4o", "summarise", "run agent"]  # no POST, no SELECT
    assert exporter.get_finished_spans() == ()
    event = only_outcome(logs)
    assert event["runctx.usage.input_tokens"] == 110
    assert event["runctx.usage.output_tokens"] == 8
    assert event["runctx.usage.llm_calls"] == 2
    assert event["runctx.usage.complete"] is True  # every span that may carry tokens was seen
    # Honest counts: the two dropped spans are in span_count, and the outcome says the
    # roll-up did not see them.
    assert event["runctx.usage.span_count"] == 5
    assert event["runctx.usage.sampled_out_spans"] == 2


def test_span_counts_match_a_kept_run_and_errors_cover_recorded_spans_only(
    dropped: Pipeline,
    logs: InMemoryLogRecordExporter,
    provider: TracerProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent_run(dropped[0], fail_http=True)
    sampled_out = only_outcome(logs)
    logs.clear()
    kept_tracer, _, _ = pipeline(RunConsistentSampler(1.0), provider, monkeypatch)
    agent_run(kept_tracer, fail_http=True)
    kept_event = only_outcome(logs)
    assert sampled_out["runctx.usage.span_count"] == kept_event["runctx.usage.span_count"] == 5
    assert "runctx.usage.sampled_out_spans" not in kept_event
    # The failed HTTP span was never recorded in the dropped run: its error is not counted,
    # and sampled_out_spans says that some spans were not looked at.
    assert kept_event["runctx.usage.error_count"] == 1
    assert sampled_out["runctx.usage.error_count"] == 0
    assert sampled_out["runctx.usage.sampled_out_spans"] == 2


def test_kept_runs_record_and_export_every_span_with_its_start_attributes(
    kept: Pipeline, logs: InMemoryLogRecordExporter
) -> None:
    tracer, exporter, _ = kept
    agent_run(tracer)
    finished = {span.name: span for span in exporter.get_finished_spans()}
    assert set(finished) == {"POST", "chat gpt-4o", "SELECT", "summarise", "run agent"}
    # The attributes given at start reach the span (they were lost before: the sampler
    # returned a SamplingResult without them, and the SDK builds the span from the result's).
    attributes = finished["POST"].attributes
    assert attributes is not None and attributes["http.request.method"] == "POST"
    llm = finished["chat gpt-4o"].attributes
    assert llm is not None and llm["gen_ai.request.model"] == "gpt-4o"
    event = only_outcome(logs)
    assert event["runctx.usage.span_count"] == 5
    assert event["runctx.usage.input_tokens"] == 110


def test_all_restores_recording_every_span_of_a_dropped_run(
    provider: TracerProvider, monkeypatch: pytest.MonkeyPatch, logs: InMemoryLogRecordExporter
) -> None:
    tracer, exporter, seen = pipeline(
        RunConsistentSampler(0.0, sampled_out_spans="all"), provider, monkeypatch
    )
    agent_run(tracer)
    assert seen.ended == ["POST", "chat gpt-4o", "SELECT", "summarise", "run agent"]
    assert exporter.get_finished_spans() == ()
    event = only_outcome(logs)
    assert event["runctx.usage.span_count"] == 5
    assert "runctx.usage.sampled_out_spans" not in event


def test_a_child_of_a_dropped_span_gets_its_runs_decision(
    dropped: Pipeline, logs: InMemoryLogRecordExporter
) -> None:
    # The run comes from the context the span starts in, not from its parent span: under a
    # DROPped (non-recording) HTTP span the LLM call is still recorded for the same run.
    tracer, _, seen = dropped
    with run("agent", event_id="E", customer_id="c") as ctx:
        with tracer.start_as_current_span("GET", attributes=HTTP_OLD) as http:
            assert not http.is_recording()
            with tracer.start_as_current_span("chat", attributes=OPENAI_V2_LATEST) as llm:
                assert llm.is_recording()
                assert llm.parent is not None
                assert llm.parent.span_id == http.get_span_context().span_id
                llm.set_attribute("gen_ai.usage.input_tokens", 5)
            with tracer.start_as_current_span("SELECT", attributes=DATABASE) as query:
                assert not query.is_recording()
    assert seen.ended == ["chat", "run agent"]
    event = only_outcome(logs)
    assert event["runctx.run_id"] == ctx.run_id
    assert event["runctx.usage.input_tokens"] == 5
    assert event["runctx.usage.sampled_out_spans"] == 2


def test_the_root_span_of_a_dropped_run_is_recorded_and_carries_the_outcome(
    dropped: Pipeline, logs: InMemoryLogRecordExporter
) -> None:
    # run() starts its root span without attributes (stamped after the start), so it is a
    # span that may carry tokens: RECORD_ONLY, and deliver_outcome's is_recording() check
    # still stamps the usage on it.
    assert dropped[0] is not None  # the pipeline run() uses
    with run("agent", event_id="E", customer_id="c") as ctx:
        root = trace.get_current_span()
        assert root.is_recording()
        assert not root.get_span_context().trace_flags.sampled
    assert isinstance(root, ReadableSpan) and root.attributes is not None
    assert root.attributes["runctx.usage.span_count"] == 1
    assert root.attributes["runctx.run_id"] == ctx.run_id
    assert only_outcome(logs)["runctx.outcome.status"] == "success"


def test_a_hard_stopped_budget_still_stops_protocol_spans_of_a_dropped_run(
    dropped: Pipeline, logs: InMemoryLogRecordExporter
) -> None:
    # The roll-up's on_start raises BudgetExceeded; a DROPped span would skip it, so while a
    # hard stop is pending nothing is dropped (kept and dropped runs behave the same).
    tracer = dropped[0]
    budget = Budget(llm_calls=1, enforce="raise")
    with run("agent", event_id="E", customer_id="c", budget=budget):
        with tracer.start_as_current_span("chat", attributes=OPENAI_V2_CHAT) as llm:
            llm.set_attribute("gen_ai.usage.input_tokens", 1)
        with pytest.raises(BudgetExceeded):
            tracer.start_span("GET", attributes=HTTP_CLIENT)
    with run("other", event_id="E2", customer_id="c"):  # no hard stop: dropped again
        assert not tracer.start_span("GET", attributes=HTTP_CLIENT).is_recording()


def test_a_failure_in_the_drop_path_records_the_span_and_is_counted(
    dropped: Pipeline, logs: InMemoryLogRecordExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(run_id: str) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(sampler_module, "note_sampled_out", broken)
    before = snapshot().get("errors.sampler.sampled_out", 0)
    tracer, _, _ = dropped
    with run("agent", event_id="E", customer_id="c"):
        span = tracer.start_span("GET", attributes=HTTP_CLIENT)
        assert span.is_recording()  # conservative: a span the roll-up might need is kept
        span.end()
    assert snapshot().get("errors.sampler.sampled_out", 0) == before + 1


def test_outside_a_run_protocol_spans_are_not_counted_anywhere(dropped: Pipeline) -> None:
    tracer, _, _ = dropped
    token = otel_context.attach(Context())
    try:
        # Outside any run: ParentBased(TraceIdRatioBased(0)) DROPs, nothing is noted.
        assert not tracer.start_span("GET", attributes=HTTP_CLIENT).is_recording()
    finally:
        otel_context.detach(token)


def test_the_setting_parses_and_rejects_bad_values(settings_env: None) -> None:
    assert load_settings({}).sampled_out_spans == "llm"
    assert load_settings({"OTEL_RUNCTX_SAMPLED_OUT_SPANS": " ALL "}).sampled_out_spans == "all"
    assert load_settings({"OTEL_RUNCTX_SAMPLED_OUT_SPANS": "llm"}).sampled_out_spans == "llm"
    with pytest.raises(ConfigError, match=r"OTEL_RUNCTX_SAMPLED_OUT_SPANS='some'.*llm, all"):
        load_settings({"OTEL_RUNCTX_SAMPLED_OUT_SPANS": "some"})
    with pytest.raises(ValueError, match="sampled_out_spans must be one of llm, all"):
        RunConsistentSampler(0.5, sampled_out_spans="none")
    # The entry point (and a sampler built without the argument) read the setting.
    runctx_settings.reload_settings({"OTEL_RUNCTX_SAMPLED_OUT_SPANS": "all"})
    assert runctx_ratio_sampler("0.1").sampled_out_spans == "all"
    assert "sampled_out_spans=all" in runctx_ratio_sampler("0.1").get_description()
    runctx_settings.reload_settings({})
    assert runctx_ratio_sampler("0.1").sampled_out_spans == "llm"
    assert RunConsistentSampler(0.1, sampled_out_spans="all").sampled_out_spans == "all"


def test_drop_results_keep_the_parent_trace_state() -> None:
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

    state = TraceState([("vendor", "x")])
    parent = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(0), trace_state=state)
    context = trace.set_span_in_context(NonRecordingSpan(parent))
    sampler = RunConsistentSampler(0.0)
    attributes: Mapping[str, str] = HTTP_CLIENT
    with run("agent", event_id="E", customer_id="c"):
        result = sampler.should_sample(context, 1, "GET", attributes=attributes)
    assert result.decision is Decision.DROP
    assert result.trace_state == state
