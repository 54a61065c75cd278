"""propagation/inbound_cache.py: an accepted inbound run is reused; rejections never are."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.context import Context

from otel_runctx import RunContext, stats
from otel_runctx.context import get_run_context, with_run_context
from otel_runctx.propagation import RunContextPropagator, inbound_cache
from otel_runctx.propagation import policy as policy_module
from otel_runctx.propagation.signing import sign
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


def _signed_carrier(run: RunContext, issued_at: int) -> dict[str, str]:
    """A header for ``run`` whose signature was issued at ``issued_at`` (unix seconds)."""
    settings = load_settings({"OTEL_RUNCTX_SIGNING_KEYS": _KEYS})
    entries = run.to_baggage_dict(lean_mode=True)
    entries["runctx.sig"] = sign(settings.signing_keys[0], entries, issued_at)
    return {"baggage": ",".join(f"{key}={value}" for key, value in entries.items())}


def test_a_cached_acceptance_ends_when_the_signature_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Accepted one second before the signature's max age runs out: reusing the acceptance for
    # the cache's full 5 s would accept a replay up to 4 s past the max age.
    settings = load_settings(
        {
            "OTEL_RUNCTX_INBOUND": "verify",
            "OTEL_RUNCTX_SIGNING_KEYS": _KEYS,
            "OTEL_RUNCTX_SIGNATURE_MAX_AGE": "30",
        }
    )
    receiver = RunContextPropagator(settings)
    now = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    carrier = _signed_carrier(
        RunContext.create("job", event_id="e", customer_id="c"), 1_799_999_971
    )
    assert get_run_context(receiver.extract(carrier, context=Context())) is not None
    assert get_run_context(receiver.extract(carrier, context=Context())) is not None  # cached
    now[0] += 1.5  # the signature is now 30.5 s old; the cached acceptance only 1.5 s
    stats.reset()
    assert get_run_context(receiver.extract(carrier, context=Context())) is None
    assert stats.snapshot().get("propagation.rejected_signature.expired") == 1


def test_a_cached_acceptance_never_covers_another_signature_or_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings({"OTEL_RUNCTX_INBOUND": "verify", "OTEL_RUNCTX_SIGNING_KEYS": _KEYS})
    receiver = RunContextPropagator(settings)
    run = RunContext.create("job", event_id="e", customer_id="c")
    carrier = _signed_carrier(run, int(time.time()))
    assert get_run_context(receiver.extract(carrier, context=Context())) is not None
    text = carrier["baggage"]
    signature = text.split("runctx.sig=")[1]
    # Its last character changed: to "B" when it already is "A" (the last of the 43 base64url
    # characters carries 4 bits, so one MAC in 16 ends in "A").
    other_signature = signature[:-1] + ("B" if signature.endswith("A") else "A")
    forged = [
        text.replace("runctx.customer_id=c", "runctx.customer_id=d"),
        text + ",runctx.tenant_id=t",
        text.replace(signature, other_signature),
    ]
    stats.reset()
    for header in forged:
        assert header != text
        assert get_run_context(receiver.extract({"baggage": header}, context=Context())) is None
    assert stats.snapshot().get("propagation.rejected_signature.mismatch") == len(forged)
