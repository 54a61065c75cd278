"""Header budget: the run's entries are always sent; app baggage is dropped by a fixed rule."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context

from otel_runctx import keys, stats
from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.propagation import RunContextPropagator
from otel_runctx.propagation.codec import MAX_HEADER_BYTES, MAX_MEMBERS
from otel_runctx.settings import load_settings


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


def context_with_app_baggage(entries: list[tuple[str, str]], *, run: bool = True) -> Context:
    context = Context()
    if run:
        context = with_run_context(
            RunContext.create("wf", event_id="e", customer_id="c", tenant_id="t")
        )
    for key, value in entries:
        context = baggage.set_baggage(key, value, context)
    return context


def injected(context: Context, **env: str) -> str:
    carrier: dict[str, str] = {}
    RunContextPropagator(load_settings(env)).inject(carrier, context=context)
    return carrier["baggage"]


def test_run_entries_come_first_and_survive_200_app_entries() -> None:
    app = [(f"app{i:03d}", "v" * 30) for i in range(200)]
    header = injected(context_with_app_baggage(app))
    members = header.split(",")
    assert [m.split("=")[0] for m in members[:5]] == list(keys.LEAN_KEYS)
    assert len(members) == MAX_MEMBERS
    # The kept app entries are exactly the oldest ones, in the order they were set.
    assert [m.split("=")[0] for m in members[5:]] == [key for key, _ in app[: MAX_MEMBERS - 5]]
    assert stats.snapshot()["propagation.app_entries_dropped"] == 200 - (MAX_MEMBERS - 5)


def test_run_survives_app_baggage_that_would_fill_the_header_alone() -> None:
    app = [(f"big{i}", "x" * 3000) for i in range(5)]
    header = injected(context_with_app_baggage(app), OTEL_RUNCTX_PROPAGATION_MODE="full")
    assert len(header) <= MAX_HEADER_BYTES
    received = RunContextPropagator(load_settings({})).extract(
        {"baggage": header}, context=Context()
    )
    assert get_run_context(received) is not None
    assert list(baggage.get_all(received)) == ["big0", "big1"]
    assert stats.snapshot()["propagation.app_entries_dropped"] == 3


def test_a_single_oversized_entry_is_skipped_and_later_entries_still_go() -> None:
    app = [("small1", "a"), ("huge", "x" * 5000), ("small2", "b")]
    header = injected(context_with_app_baggage(app))
    assert "huge=" not in header
    assert header.endswith("small1=a,small2=b")
    assert stats.snapshot()["propagation.app_entries_dropped"] == 1


def test_the_drop_rule_is_the_same_on_every_call() -> None:
    app = [(f"k{i}", "y" * (i * 37 % 400)) for i in range(120)]
    context = context_with_app_baggage(app)
    assert len({injected(context) for _ in range(3)}) == 1


def test_a_stock_receiver_accepts_every_member_we_send() -> None:
    app = [(f"k{i}", "é" * 100) for i in range(60)]  # 600 encoded bytes each
    header = injected(context_with_app_baggage(app))
    stock = W3CBaggagePropagator().extract({"baggage": header}, context=Context())
    assert len(baggage.get_all(stock)) == len(header.split(","))


def test_unicode_encoded_size_counts_toward_the_limit_not_the_character_count() -> None:
    # 1500 characters of "€" percent-encode to 13,500 bytes: far past the 4096-byte member limit.
    header = injected(context_with_app_baggage([("euro", "€" * 1500), ("ok", "1")]))
    assert "euro=" not in header and header.endswith("ok=1")


def test_app_baggage_alone_is_budgeted_too() -> None:
    app = [(f"k{i}", "v") for i in range(300)]
    header = injected(context_with_app_baggage(app, run=False))
    assert len(header.split(",")) == MAX_MEMBERS
    assert stats.snapshot()["propagation.app_entries_dropped"] == 300 - MAX_MEMBERS


def test_a_run_too_large_for_any_header_is_not_sent_in_part() -> None:
    huge = RunContext.create(
        "€" * 256, event_id="€" * 256, customer_id="€" * 256, tenant_id="€" * 256
    )
    context = baggage.set_baggage("app", "1", with_run_context(huge))
    header = injected(context)
    assert header == "app=1"
    assert stats.snapshot()["propagation.run_too_large"] == 1


def test_a_value_with_no_utf8_form_is_dropped_alone() -> None:
    header = injected(context_with_app_baggage([("bad", "\ud800"), ("ok", "1")]))
    assert "bad=" not in header and header.endswith("ok=1")
    assert stats.snapshot()["propagation.app_entries_dropped"] == 1


def test_a_run_with_no_utf8_form_is_not_sent_and_app_baggage_still_is() -> None:
    odd = RunContext.create("wf", event_id="\ud800", customer_id="c")
    header = injected(baggage.set_baggage("app", "1", with_run_context(odd)))
    assert header == "app=1"
    assert stats.snapshot()["propagation.run_too_large"] == 1
    assert not [name for name in stats.snapshot() if name.startswith("errors.")]
