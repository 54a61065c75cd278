"""The signed header's bytes stay what earlier releases sent and accepted.

The two headers below were produced by the code on main at e9b59b7 (before the hop speed-ups),
with the clock fixed. Today's sender must write the same bytes, and today's receiver must accept
them, so services on either version keep talking to each other during a rolling upgrade.
"""

from __future__ import annotations

import time

import pytest
from opentelemetry import baggage
from opentelemetry.context import Context

from otel_runctx import stats
from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.propagation import RunContextPropagator, inbound_cache
from otel_runctx.settings import load_settings

_KEYS = "k2026b:new-secret-fedcba9876543210"
_NOW = 1767225600.25
_PARENT = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"
_RUN = RunContext(
    run_id="0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5c",
    workflow="charge card",
    event_id="evt 1/é+%",
    customer_id="acme,inc;x",
    environment="prod",
    tenant_id="t=1",
    parent_run_id=_PARENT,
    root_run_id=_PARENT,
    attempt=2,
    retry_of_run_id="0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5d",
    deadline=1767225900.5,
)
_IDS = (
    "runctx.run_id=0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5c",
    "runctx.root_run_id=0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
)
_FIELDS = (
    "runctx.workflow=charge%20card,runctx.event_id=evt%201/%C3%A9%2B%25,"
    "runctx.customer_id=acme%2Cinc%3Bx"
)
HEADERS = {
    "lean": (
        f"{_IDS[0]},{_FIELDS},runctx.tenant_id=t=1,{_IDS[1]},"
        f"runctx.parent_run_id={_PARENT},"
        "runctx.sig=v2:k2026b:1767225600:NlL2Umr0naPLQoR4tJ5Yi8aSSkD2zpcOstDsq526fTk,feature=beta"
    ),
    "full": (
        f"{_IDS[0]},{_IDS[1]},{_FIELDS},runctx.environment=prod,runctx.attempt=2,"
        f"runctx.tenant_id=t=1,runctx.parent_run_id={_PARENT},"
        "runctx.retry_of_run_id=0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5d,"
        "runctx.deadline=1767225900.5,"
        "runctx.sig=v2:k2026b:1767225600:QkuBH7D7loKCXD18n4__QqX9IYa0TR79A5zm5vW7rs0,feature=beta"
    ),
}


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: _NOW)
    inbound_cache.clear()


@pytest.mark.parametrize("mode", ["lean", "full"])
def test_the_sender_writes_the_same_bytes_as_before(mode: str) -> None:
    env = {"OTEL_RUNCTX_SIGNING_KEYS": _KEYS, "OTEL_RUNCTX_PROPAGATION_MODE": mode}
    carrier: dict[str, str] = {}
    context = baggage.set_baggage("feature", "beta", with_run_context(_RUN))
    RunContextPropagator(load_settings(env)).inject(carrier, context=context)
    assert carrier == {"baggage": HEADERS[mode]}


@pytest.mark.parametrize("mode", ["lean", "full"])
def test_the_receiver_accepts_what_earlier_senders_wrote(mode: str) -> None:
    receiver = RunContextPropagator(
        load_settings({"OTEL_RUNCTX_INBOUND": "verify", "OTEL_RUNCTX_SIGNING_KEYS": _KEYS})
    )
    run = get_run_context(receiver.extract({"baggage": HEADERS[mode]}, context=Context()))
    assert run is not None
    assert (run.run_id, run.event_id, run.customer_id, run.tenant_id) == (
        _RUN.run_id,
        _RUN.event_id,
        _RUN.customer_id,
        _RUN.tenant_id,
    )
    if mode == "full":
        assert run == _RUN
    stats.reset()
    tampered = HEADERS[mode].replace("acme%2Cinc", "acme%2Cinq")
    assert get_run_context(receiver.extract({"baggage": tampered}, context=Context())) is None
    assert stats.snapshot().get("propagation.rejected_signature.mismatch") == 1
