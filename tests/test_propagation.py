"""RunContextPropagator: the run and the app's baggage cross a service boundary in one header."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points

import pytest
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_runctx import keys, run, stats
from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.processors.span import RunContextSpanProcessor
from otel_runctx.propagation import RunContextPropagator, propagation_stats
from otel_runctx.settings import load_settings


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


def propagator(**env: str) -> RunContextPropagator:
    return RunContextPropagator(load_settings(env))


def a_run(**fields: str) -> RunContext:
    values = {"event_id": "evt-1", "customer_id": "acme", **fields}
    return RunContext.create("checkout", **values)


def hop(
    sender: RunContextPropagator,
    receiver: RunContextPropagator,
    context: Context,
) -> Context:
    carrier: dict[str, str] = {}
    sender.inject(carrier, context=context)
    return receiver.extract(carrier, context=Context())


def test_service_b_gets_service_a_run_as_its_active_run() -> None:
    sent = a_run(tenant_id="t-9")
    received = get_run_context(hop(propagator(), propagator(), with_run_context(sent)))
    assert received is not None
    assert (received.run_id, received.workflow, received.event_id) == (
        sent.run_id,
        "checkout",
        "evt-1",
    )
    assert (received.customer_id, received.tenant_id) == ("acme", "t-9")
    assert propagation_stats() == {"propagation.accepted": 1}


def test_full_mode_carries_every_set_field_and_lean_mode_only_the_lean_keys() -> None:
    parent = a_run()
    child = parent.create_child("charge", deadline_seconds=60)
    full = get_run_context(
        hop(propagator(OTEL_RUNCTX_PROPAGATION_MODE="full"), propagator(), with_run_context(child))
    )
    assert full is not None
    assert full.to_span_attributes() == child.to_span_attributes()

    carrier: dict[str, str] = {}
    propagator().inject(carrier, context=with_run_context(child))
    sent_keys = {member.split("=")[0] for member in carrier["baggage"].split(",")}
    assert sent_keys == {k for k in keys.LEAN_KEYS if k != keys.TENANT_ID} | {
        keys.ROOT_RUN_ID,
        keys.PARENT_RUN_ID,
    }


def test_spans_started_in_the_extracted_context_are_stamped_with_the_inbound_run() -> None:
    # A private provider: adding our processor to the session's global one would leak into
    # tests that prove the root span is stamped without it.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(RunContextSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sent = a_run()
    context = hop(propagator(), propagator(), with_run_context(sent))
    token = otel_context.attach(context)
    try:
        with provider.get_tracer("service-b").start_as_current_span("handle"):
            pass
    finally:
        otel_context.detach(token)
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes[keys.RUN_ID] == sent.run_id
    assert span.attributes[keys.CUSTOMER_ID] == "acme"


def test_app_baggage_travels_with_the_run_and_stays_ordinary_baggage() -> None:
    context = baggage.set_baggage("feature", "beta", with_run_context(a_run()))
    context = baggage.set_baggage("region", "eu west/1+2", context)
    received = hop(propagator(), propagator(), context)
    assert dict(baggage.get_all(received)) == {"feature": "beta", "region": "eu west/1+2"}
    assert get_run_context(received) is not None


def test_run_entries_never_become_otel_baggage_on_the_receiving_side() -> None:
    received = hop(propagator(), propagator(), with_run_context(a_run()))
    assert not [key for key in baggage.get_all(received) if key.startswith("runctx.")]


def test_run_entries_that_an_earlier_stock_baggage_propagator_extracted_are_removed() -> None:
    # OTEL_PROPAGATORS=tracecontext,baggage,runctx: the stock propagator runs first and copies
    # every entry, forged ones included, into OTel baggage.
    header = "runctx.customer_id=forged,app=1"
    stock_context = W3CBaggagePropagator().extract({"baggage": header}, context=Context())
    assert baggage.get_baggage("runctx.customer_id", stock_context) == "forged"
    ours = propagator().extract({"baggage": header}, context=stock_context)
    assert dict(baggage.get_all(ours)) == {"app": "1"}


def test_inject_sends_the_active_run_not_run_entries_found_in_app_baggage() -> None:
    real = a_run(customer_id="real")
    context = baggage.set_baggage(keys.CUSTOMER_ID, "spoofed", with_run_context(real))
    carrier: dict[str, str] = {}
    propagator().inject(carrier, context=context)
    assert "spoofed" not in carrier["baggage"]
    assert f"{keys.CUSTOMER_ID}=real" in carrier["baggage"]


def test_a_receiver_forwards_the_run_it_received_to_the_next_service() -> None:
    sent = a_run()
    at_b = hop(propagator(), propagator(), with_run_context(sent))
    at_c = get_run_context(hop(propagator(), propagator(), at_b))
    assert at_c is not None and at_c.run_id == sent.run_id


def test_a_run_started_in_service_b_is_a_child_of_the_inbound_run() -> None:
    sent = a_run()
    token = otel_context.attach(hop(propagator(), propagator(), with_run_context(sent)))
    try:
        with run("b-step") as child:
            assert child.parent_run_id == sent.run_id
            assert child.customer_id == "acme"
    finally:
        otel_context.detach(token)


def test_no_run_and_no_baggage_writes_no_header() -> None:
    carrier: dict[str, str] = {}
    propagator().inject(carrier, context=Context())
    assert carrier == {}


def test_no_header_leaves_the_context_as_it_was() -> None:
    context = baggage.set_baggage("kept", "yes", Context())
    assert propagator().extract({}, context=context) is context


def test_extract_without_a_run_leaves_an_existing_run_in_place() -> None:
    existing = a_run()
    context = propagator().extract({"baggage": "app=1"}, context=with_run_context(existing))
    assert get_run_context(context) is existing


def test_repeated_baggage_headers_are_read_as_one_list() -> None:
    sent = a_run()
    carrier: dict[str, str] = {}
    propagator().inject(carrier, context=with_run_context(sent))
    members = carrier["baggage"].split(",")
    split_carrier = {"baggage": [",".join(members[:2]), ",".join(members[2:]), "app=1"]}
    received = propagator().extract(split_carrier, context=Context())
    run_at_b = get_run_context(received)
    assert run_at_b is not None and run_at_b.run_id == sent.run_id
    assert baggage.get_baggage("app", received) == "1"


def test_values_survive_a_stock_python_receiver_exactly() -> None:
    # Our encoder escapes "+" and space, so a receiver that decodes with unquote_plus (the
    # stock W3CBaggagePropagator) reads the same text we sent.
    value = "a+b c/é,;=%"
    context = baggage.set_baggage("k", value, with_run_context(a_run()))
    carrier: dict[str, str] = {}
    propagator().inject(carrier, context=context)
    stock = W3CBaggagePropagator().extract(carrier, context=Context())
    assert baggage.get_baggage("k", stock) == value


def test_stock_python_sender_turns_spaces_into_plus_which_a_spec_receiver_keeps() -> None:
    # Surprising OTel fact: the stock propagator encodes with quote_plus, so "a b" goes on the
    # wire as "a+b". W3C baggage gives "+" no special meaning, so a spec-following receiver
    # (ours) reads "a+b". Use runctx on both sides.
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, context=baggage.set_baggage("k", "a b", Context()))
    assert carrier["baggage"] == "k=a+b"
    assert baggage.get_baggage("k", propagator().extract(carrier, context=Context())) == "a+b"


def test_stock_propagator_limits_as_read_from_the_installed_source() -> None:
    # The facts the budget is built on: OTel Python keeps at most 180 members, 4096 bytes per
    # member and 8192 bytes per header, and silently (a log line, nothing raised) drops the rest.
    assert W3CBaggagePropagator._MAX_PAIRS == 180
    assert W3CBaggagePropagator._MAX_PAIR_LENGTH == 4096
    assert W3CBaggagePropagator._MAX_HEADER_LENGTH == 8192
    source = inspect.getsource(sys.modules[W3CBaggagePropagator.__module__])
    assert "quote_plus" in source and "unquote_plus" in source

    stock = W3CBaggagePropagator()
    many = ",".join(f"k{i}=v" for i in range(200))
    assert len(baggage.get_all(stock.extract({"baggage": many}, context=Context()))) == 180
    oversized = "k=" + "v" * 8200
    assert dict(baggage.get_all(stock.extract({"baggage": oversized}, context=Context()))) == {}
    context = Context()
    for i in range(200):
        context = baggage.set_baggage(f"k{i}", "v", context)
    carrier: dict[str, str] = {}
    stock.inject(carrier, context=context)
    assert len(carrier["baggage"].split(",")) == 180


def test_extract_never_raises_even_when_the_getter_does() -> None:
    class BrokenGetter:
        def get(self, carrier: object, key: str) -> list[str] | None:
            raise RuntimeError("broken carrier")

        def keys(self, carrier: object) -> list[str]:
            return []

    context = Context()
    assert propagator().extract({}, context=context, getter=BrokenGetter()) is context
    assert stats.snapshot()["errors.propagation.extract"] == 1


def test_inject_never_raises_even_when_the_setter_does() -> None:
    class BrokenSetter:
        def set(self, carrier: object, key: str, value: str) -> None:
            raise RuntimeError("read-only carrier")

    propagator().inject({}, context=with_run_context(a_run()), setter=BrokenSetter())
    assert stats.snapshot()["errors.propagation.inject"] == 1


def test_the_runctx_entry_point_is_what_opentelemetry_propagate_loads() -> None:
    (entry,) = entry_points(group="opentelemetry_propagator", name="runctx")
    assert entry.load() is RunContextPropagator
    code = (
        "import json; from opentelemetry import propagate;"
        "print(json.dumps([type(p).__name__ for p in "
        "propagate.get_global_textmap()._propagators]))"
    )
    env = {**os.environ, "OTEL_PROPAGATORS": "tracecontext,runctx"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    names = json.loads(result.stdout)
    assert names == ["TraceContextTextMapPropagator", "RunContextPropagator"]
