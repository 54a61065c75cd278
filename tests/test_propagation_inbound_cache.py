"""propagation/inbound_cache.py: an accepted inbound run is reused; rejections never are."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.context import Context

from otel_runctx import RunContext, stats
from otel_runctx.context import get_run_context, with_run_context
from otel_runctx.propagation import RunContextPropagator, inbound_cache
from otel_runctx.propagation import policy as policy_module
from otel_runctx.settings import load_settings

_KEYS = "k1:inbound-cache-secret-0123456789"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    inbound_cache.clear()
    yield
    inbound_cache.clear()


def _header(propagator: RunContextPropagator, run: RunContext) -> dict[str, str]:
    carrier: dict[str, str] = {}
    propagator.inject(carrier, context=with_run_context(run))
    return carrier


def _counting_policy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = inbound_cache.inbound_run

    def counted(*args: object) -> object:
        calls[0] += 1
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(inbound_cache, "inbound_run", counted)
    return calls


def test_a_repeated_signed_header_is_verified_once_and_counted_every_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings({"OTEL_RUNCTX_INBOUND": "verify", "OTEL_RUNCTX_SIGNING_KEYS": _KEYS})
    propagator = RunContextPropagator(settings)
    run = RunContext.create("job", event_id="e", customer_id="c")
    carrier = _header(propagator, run)
    calls = _counting_policy(monkeypatch)
    before = stats.snapshot().get("propagation.accepted", 0)
    received = [get_run_context(propagator.extract(carrier, context=Context())) for _ in range(5)]
    assert calls[0] == 1
    assert all(r is not None and r.run_id == run.run_id for r in received)
    assert stats.snapshot().get("propagation.accepted", 0) - before == 5


def test_a_rejected_header_is_checked_again_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings({"OTEL_RUNCTX_INBOUND": "verify", "OTEL_RUNCTX_SIGNING_KEYS": _KEYS})
    run = RunContext.create("job", event_id="e", customer_id="c")
    carrier = _header(RunContextPropagator(load_settings({})), run)  # unsigned
    calls = _counting_policy(monkeypatch)
    propagator = RunContextPropagator(settings)
    for _ in range(3):
        assert get_run_context(propagator.extract(carrier, context=Context())) is None
    assert calls[0] == 3


def test_an_acceptance_is_not_reused_under_other_settings_or_after_it_aged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = RunContext.create("job", event_id="e", customer_id="c")
    trusting = RunContextPropagator(load_settings({}))
    carrier = _header(trusting, run)
    calls = _counting_policy(monkeypatch)
    trusting.extract(carrier, context=Context())
    # Same entries, new settings (a key rotation, a policy change): checked again.
    ignoring = RunContextPropagator(load_settings({"OTEL_RUNCTX_INBOUND": "ignore"}))
    assert get_run_context(ignoring.extract(carrier, context=Context())) is None
    monkeypatch.setattr(inbound_cache, "MAX_AGE_SECONDS", 0.0)
    trusting.extract(carrier, context=Context())
    assert calls[0] == 3


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inbound_cache, "CACHE_SIZE", 4)
    propagator = RunContextPropagator(load_settings({}))
    for index in range(20):
        run = RunContext.create("job", event_id=f"e-{index}", customer_id="c")
        propagator.extract(_header(propagator, run), context=Context())
    assert len(inbound_cache._accepted) <= 4
    assert policy_module.inbound_run is inbound_cache.inbound_run
