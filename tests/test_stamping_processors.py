"""RunContextSpanProcessor: what gets stamped, both stamping paths, baggage fallback, no raising."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.sdk.trace import Span, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import RunContext, reset_run_context, run, set_run_context, stats
from otel_runctx.processors import _fast_stamp, _lookup
from otel_runctx.processors.span import RunContextSpanProcessor, root_span_start
from otel_runctx.settings import reload_settings
from tests.stamping_helpers import by_name, runctx_attributes, stamped_tracer


@pytest.fixture(params=["fast", "public"])
def stamper(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test once with the guarded fast path and once with the public-API fallback."""
    chosen = _fast_stamp.stamp_fast if request.param == "fast" else _fast_stamp.stamp_public
    monkeypatch.setattr(_fast_stamp, "stamp", chosen)
    yield request.param


def test_the_fast_path_is_available_on_the_installed_sdk() -> None:
    # If an SDK upgrade changes Span/BoundedAttributes internals, the import-time probe turns the
    # fast path off (everything still works through set_attributes); this test makes it visible.
    assert _fast_stamp.FAST_PATH_AVAILABLE
    assert _fast_stamp.stamp is _fast_stamp.stamp_fast


def test_the_probe_turns_the_fast_path_off_when_sdk_internals_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class SomeOtherStorage:
        """Stands for an SDK whose span attribute storage is no longer BoundedAttributes."""

    monkeypatch.setattr(_fast_stamp, "BoundedAttributes", SomeOtherStorage)
    assert _fast_stamp._probe() is False
    # stamp_fast itself also notices per span and hands over to the public API.
    monkeypatch.setattr(_fast_stamp, "stamp", _fast_stamp.stamp_fast)
    tracer, exporter = stamped_tracer()
    with run("job", event_id="e-1", customer_id="c-1") as ctx:
        tracer.start_span("s").end()
    assert runctx_attributes(exporter.get_finished_spans()[0]) == dict(ctx.to_stamp_attributes())


def test_spans_in_a_run_carry_exactly_the_runs_attributes(stamper: str) -> None:
    tracer, exporter = stamped_tracer()
    with run("job", event_id="e-1", customer_id="c-1", tenant_id="t-1") as parent:
        with tracer.start_as_current_span("inner", attributes={"user.key": "kept"}):
            with tracer.start_as_current_span("deeper"):
                pass
        with run("child") as child, tracer.start_as_current_span("in-child"):
            pass
        with tracer.start_as_current_span("after-child"):
            pass
    with tracer.start_as_current_span("outside"):
        pass
    spans = by_name(exporter.get_finished_spans())
    assert runctx_attributes(spans["inner"]) == dict(parent.to_stamp_attributes())
    assert dict(spans["inner"].attributes or {})["user.key"] == "kept"
    assert runctx_attributes(spans["deeper"]) == dict(parent.to_stamp_attributes())
    assert runctx_attributes(spans["in-child"]) == dict(child.to_stamp_attributes())
    assert runctx_attributes(spans["after-child"]) == dict(parent.to_stamp_attributes())
    assert dict(spans["outside"].attributes or {}) == {}


def test_an_explicit_parent_context_wins_over_the_current_one(stamper: str) -> None:
    tracer, exporter = stamped_tracer()
    with run("other", event_id="e-o", customer_id="c-o") as other:
        captured = otel_context.get_current()
    with run("job", event_id="e-1", customer_id="c-1"):
        tracer.start_span("explicit", context=captured).end()
    assert runctx_attributes(exporter.get_finished_spans()[0]) == dict(other.to_stamp_attributes())


def test_an_explicit_context_without_a_run_falls_back_to_the_current_run(stamper: str) -> None:
    tracer, exporter = stamped_tracer()
    with run("job", event_id="e-1", customer_id="c-1") as ctx:
        tracer.start_span("fresh-root", context=otel_context.Context()).end()
    tracer.start_span("no-run-anywhere", context=otel_context.Context()).end()
    spans = by_name(exporter.get_finished_spans())
    assert runctx_attributes(spans["fresh-root"]) == dict(ctx.to_stamp_attributes())
    assert runctx_attributes(spans["no-run-anywhere"]) == {}


def _limited_span(limits: SpanLimits) -> tuple[dict[str, object], int]:
    tracer, exporter = stamped_tracer(span_limits=limits)
    with run("job", event_id="event-1", customer_id="customer-1"):
        tracer.start_span("limited", attributes={"user.a": "value"}).end()
    span = exporter.get_finished_spans()[0]
    return dict(span.attributes or {}), span.dropped_attributes


def test_span_limits_apply_exactly_as_with_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path must not bypass span limits: it hands such spans to set_attributes."""
    count_limit, length_limit = (
        # 3 evicts the (per-run random) run id on both paths, so the results compare equal.
        SpanLimits(max_span_attributes=3),
        SpanLimits(max_span_attribute_length=3),
    )
    results = {}
    for name, chosen in (("fast", _fast_stamp.stamp_fast), ("public", _fast_stamp.stamp_public)):
        monkeypatch.setattr(_fast_stamp, "stamp", chosen)
        results[name] = (_limited_span(count_limit), _limited_span(length_limit))
    assert results["fast"] == results["public"]
    (count_attrs, count_dropped), (length_attrs, _) = results["fast"]
    assert len(count_attrs) == 3 and count_dropped > 0
    assert all(len(v) <= 3 for v in length_attrs.values() if isinstance(v, str))
    assert length_attrs["runctx.event_id"] == "eve"


def test_root_span_is_stamped_by_run_itself_without_our_processor(
    spans: InMemorySpanExporter,
) -> None:
    # The session's global provider (tests/conftest.py) has no RunContextSpanProcessor.
    plain = trace.get_tracer("test.plain")
    with run("job", event_id="e-1", customer_id="c-1") as ctx, plain.start_as_current_span("x"):
        pass
    finished = by_name(spans.get_finished_spans())
    # The root span also carries the run's outcome (runctx.outcome.*, runctx.usage.*).
    run_attributes = {
        k: v
        for k, v in runctx_attributes(finished["run job"]).items()
        if not k.startswith(("runctx.outcome.", "runctx.usage.", "runctx.sample."))
    }
    assert run_attributes == dict(ctx.to_span_attributes())
    assert runctx_attributes(finished["x"]) == {}


def _with_processors(monkeypatch: pytest.MonkeyPatch, *processors: SpanProcessor) -> None:
    """Add ``processors`` to the session's global provider for this test only."""
    multi = trace.get_tracer_provider()._active_span_processor  # type: ignore[attr-defined]
    monkeypatch.setattr(multi, "_span_processors", multi._span_processors + processors)


class _AttributesAtStart(SpanProcessor):
    """Keeps what each span carries when this processor's on_start runs."""

    def __init__(self) -> None:
        self.seen: dict[str, dict[str, object]] = {}

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        self.seen[span.name] = dict(span.attributes or {})


def test_our_processor_stamps_the_root_span_with_the_full_set_at_start(
    spans: InMemorySpanExporter,
) -> None:
    """run() tells the processor which span is the run's root: that one gets the full set in
    on_start (so processors after ours see it there), once; every other span the lean set."""
    peek = _AttributesAtStart()
    with pytest.MonkeyPatch.context() as patch:
        _with_processors(patch, RunContextSpanProcessor(), peek)
        with run("job", event_id="e-1", customer_id="c-1", tenant_id="t-1") as ctx:
            trace.get_tracer("test.inner").start_span("inner").end()
        assert root_span_start.run is None  # cleared by the processor
    assert peek.seen["run job"] == dict(ctx.to_span_attributes())
    assert peek.seen["inner"] == dict(ctx.to_stamp_attributes())
    assert dict(ctx.to_stamp_attributes()) != dict(ctx.to_span_attributes())  # lean by default
    root = by_name(spans.get_finished_spans())["run job"]
    assert {k: v for k, v in runctx_attributes(root).items() if k in ctx.to_span_attributes()} == (
        dict(ctx.to_span_attributes())
    )


class _StartsASpanAtRootStart(SpanProcessor):
    """Starts one span of its own, in the same run, while the run's root span starts."""

    def __init__(self) -> None:
        self.started = False

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        if not self.started and span.name.startswith("run "):
            self.started = True
            trace.get_tracer("test.side").start_span("side", context=parent_context).end()


def test_a_span_started_while_the_root_span_starts_is_not_taken_for_it(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    peek = _AttributesAtStart()
    _with_processors(monkeypatch, _StartsASpanAtRootStart(), RunContextSpanProcessor(), peek)
    with run("job", event_id="e-1", customer_id="c-1") as ctx:
        pass
    assert peek.seen["side"] == dict(ctx.to_stamp_attributes())
    assert peek.seen["run job"] == dict(ctx.to_span_attributes())


def test_root_span_keeps_the_full_set_when_our_processor_fails_to_stamp_it(
    spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(span: Span, attributes: object) -> None:
        raise RuntimeError("stamping broke")

    before = stats.snapshot().get("errors.span_processor.on_start", 0)
    _with_processors(monkeypatch, RunContextSpanProcessor())
    monkeypatch.setattr(_fast_stamp, "stamp", broken)
    with run("job", event_id="e-1", customer_id="c-1") as ctx:
        pass
    assert root_span_start.run is None
    assert stats.snapshot().get("errors.span_processor.on_start", 0) == before + 1
    root = by_name(spans.get_finished_spans())["run job"]
    # run() saw that the processor did not stamp it and wrote them itself (the public way).
    assert {k: v for k, v in runctx_attributes(root).items() if k in ctx.to_span_attributes()} == (
        dict(ctx.to_span_attributes())
    )


# -- baggage from an upstream service -----------------------------------------------------------


def _downstream_context(entries: dict[str, str]) -> otel_context.Context:
    """What a service using the stock W3C baggage propagator extracts from these entries."""
    upstream = otel_context.Context()
    for key, value in entries.items():
        upstream = baggage.set_baggage(key, value, upstream)
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, upstream)
    return W3CBaggagePropagator().extract(carrier)


def test_runctx_baggage_from_upstream_is_stamped_when_no_run_is_set(stamper: str) -> None:
    tracer, exporter = stamped_tracer()
    upstream_run = RunContext.create("upstream", event_id="e-9", customer_id="c 9/ü")
    context = _downstream_context(
        {**upstream_run.to_baggage_dict(lean_mode=False), "other.vendor": "x"}
    )
    token = otel_context.attach(context)
    try:
        with tracer.start_as_current_span("handler"):
            with tracer.start_as_current_span("db"):
                pass
    finally:
        otel_context.detach(token)
    for span in exporter.get_finished_spans():
        assert runctx_attributes(span) == dict(upstream_run.to_stamp_attributes()), span.name
        assert "other.vendor" not in (span.attributes or {})


@pytest.mark.parametrize("mode", ["verify", "ignore"])
def test_baggage_is_not_stamped_unless_inbound_runs_are_trusted(mode: str) -> None:
    # Stock baggage carries no signature: a `verify` edge must not let it choose the customer.
    _lookup.clear_baggage_cache()
    keys_env = {"OTEL_RUNCTX_SIGNING_KEYS": "k1:0123456789abcdef0123"} if mode == "verify" else {}
    reload_settings({"OTEL_RUNCTX_INBOUND": mode, **keys_env})
    try:
        tracer, exporter = stamped_tracer()
        forged = RunContext.create("forged", event_id="e-f", customer_id="someone-else")
        token = otel_context.attach(_downstream_context(forged.to_baggage_dict()))
        try:
            with tracer.start_as_current_span("handler"):
                pass
        finally:
            otel_context.detach(token)
        (span,) = exporter.get_finished_spans()
        assert runctx_attributes(span) == {}
    finally:
        reload_settings({})
        _lookup.clear_baggage_cache()


def test_a_set_run_wins_over_baggage() -> None:
    tracer, exporter = stamped_tracer()
    upstream_run = RunContext.create("upstream", event_id="e-up", customer_id="c-up")
    local = RunContext.create("local", event_id="e-local", customer_id="c-local")
    token = otel_context.attach(_downstream_context(upstream_run.to_baggage_dict()))
    try:
        run_token = set_run_context(local)
        try:
            tracer.start_span("s").end()
        finally:
            reset_run_context(run_token)
    finally:
        otel_context.detach(token)
    assert runctx_attributes(exporter.get_finished_spans()[0]) == dict(local.to_stamp_attributes())


@pytest.mark.parametrize(
    "bad",
    [
        {"runctx.run_id": "not-a-uuid", "runctx.workflow": "w"},
        {"runctx.run_id": "0190a5a0-0000-7000-8000-000000000000"},  # no workflow/event/customer
        {
            "runctx.run_id": "0190a5a0-0000-7000-8000-000000000000",
            "runctx.workflow": "w",
            "runctx.event_id": "e",
            "runctx.customer_id": "c\x00",
        },
    ],
    ids=["bad-run-id", "missing-fields", "control-character"],
)
def test_invalid_runctx_baggage_is_not_stamped_and_is_counted(bad: dict[str, str]) -> None:
    _lookup.clear_baggage_cache()
    tracer, exporter = stamped_tracer()
    before = stats.snapshot().get("errors.stamping.baggage", 0)
    token = otel_context.attach(_downstream_context(bad))
    try:
        tracer.start_span("s").end()
    finally:
        otel_context.detach(token)
    assert runctx_attributes(exporter.get_finished_spans()[0]) == {}
    assert stats.snapshot().get("errors.stamping.baggage", 0) == before + 1


def test_the_baggage_cache_is_bounded() -> None:
    _lookup.clear_baggage_cache()
    tracer, exporter = stamped_tracer()
    runs = [RunContext.create("w", event_id=f"e-{i}", customer_id="c") for i in range(1_000)]
    for upstream_run in runs:
        token = otel_context.attach(_downstream_context(upstream_run.to_baggage_dict()))
        try:
            tracer.start_span("s").end()
        finally:
            otel_context.detach(token)
    assert _lookup.baggage_cache_size() == _lookup.BAGGAGE_CACHE_SIZE
    stamped = [dict(s.attributes or {})["runctx.event_id"] for s in exporter.get_finished_spans()]
    assert stamped == [r.event_id for r in runs]


# -- never raise into user code -----------------------------------------------------------------


def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("injected fault")


@pytest.mark.parametrize("target", ["stamp", "lookup"])
def test_a_failing_processor_never_reaches_the_caller(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_runctx.processors import span as span_module

    if target == "stamp":
        monkeypatch.setattr(_fast_stamp, "stamp", _explode)
    else:
        monkeypatch.setattr(span_module, "run_for", _explode)
    tracer, exporter = stamped_tracer()
    before = stats.snapshot().get("errors.span_processor.on_start", 0)
    with run("job", event_id="e", customer_id="c"):
        with tracer.start_as_current_span("survives") as span:
            span.set_attribute("user.ok", True)
    assert [s.name for s in exporter.get_finished_spans()] == ["survives"]
    assert stats.snapshot()["errors.span_processor.on_start"] == before + 1


@pytest.mark.parametrize(
    "extra",
    [
        {"runctx.outcome.status": "success", "runctx.outcome.duration_ms": 1.5, "n": 3, "b": True},
        {"runctx.usage.models": ["gpt-4o", "o3"], "runctx.usage.span_count": 2},
    ],
    ids=["scalars", "with-a-list"],
)
def test_outcome_attributes_on_the_root_span_match_the_public_api(
    extra: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """stamp_scalars takes the fast path only for plain scalars; a list goes the public way and
    comes out as the tuple the SDK makes of it."""
    results = {}
    for name, chosen in (("fast", _fast_stamp.stamp_fast), ("public", _fast_stamp.stamp_public)):
        monkeypatch.setattr(_fast_stamp, "stamp", chosen)
        tracer, exporter = stamped_tracer()
        span = tracer.start_span("root", attributes={"user.key": 1})
        _fast_stamp.stamp_scalars(span, extra)  # type: ignore[arg-type]
        span.end()
        results[name] = dict(exporter.get_finished_spans()[0].attributes or {})
    assert results["fast"] == results["public"]
    assert all(not isinstance(value, list) for value in results["fast"].values())
