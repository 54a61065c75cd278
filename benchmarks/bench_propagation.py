"""One service hop (inject into a dict carrier, then extract from it): runctx vs stock baggage.

The stock W3CBaggagePropagator carries the same entries as plain baggage: the run's lean
entries plus three app entries. It does not validate, sign or rebuild a run, so the ratio is
the price of those. "new run each hop" cycles through more runs than the sender's encoded-run
cache and the receiver's accepted-run cache hold, so neither ever hits; "same run" is a run
making repeated calls.
Variants are timed in turns and each keeps its best turn, so load from other processes on the
machine distorts the ratios less than the absolute numbers.
"""

from __future__ import annotations

import hashlib
import hmac
from itertools import cycle

from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context

from benchmarks._harness import Row, ns_per_op
from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.propagation import RunContextPropagator, inbound_cache
from otel_runctx.propagation.signing import sign, verify
from otel_runctx.settings import SigningKey, load_settings

TITLE = "propagation: inject + extract per hop (lean run + 3 app entries)"

_APP = {"feature": "beta", "region": "eu-west-1", "request.origin": "mobile app/2.3"}
_KEYS = "k1:benchmark-secret-0123456789,k0:retired-secret-0123456789"


def _context(run: RunContext) -> Context:
    context = with_run_context(run)
    for key, value in _APP.items():
        context = baggage.set_baggage(key, value, context)
    return context


def _stock_context(run: RunContext) -> Context:
    context = Context()
    for key, value in {**run.to_baggage_dict(lean_mode=True), **_APP}.items():
        context = baggage.set_baggage(key, value, context)
    return context


def _hop(propagator: object, contexts: cycle[Context], check_run: bool) -> None:
    assert isinstance(propagator, (RunContextPropagator, W3CBaggagePropagator))

    def operation() -> None:
        carrier: dict[str, str] = {}
        propagator.inject(carrier, context=next(contexts))
        received = propagator.extract(carrier, context=Context())
        if check_run:
            assert get_run_context(received) is not None

    operation()
    return operation  # type: ignore[return-value]


def measure(quick: bool) -> list[Row]:
    ops = 2_000 if quick else 50_000
    # More runs than the receiver keeps accepted (propagation/inbound_cache.py), so "new run"
    # really pays validation and verification on every hop.
    runs = [
        RunContext.create("checkout", event_id=f"evt-{i}", customer_id="acme", tenant_id="t1")
        for i in range(4 * inbound_cache.CACHE_SIZE)
    ]
    plain = RunContextPropagator(load_settings({}))
    signed = RunContextPropagator(
        load_settings({"OTEL_RUNCTX_INBOUND": "verify", "OTEL_RUNCTX_SIGNING_KEYS": _KEYS})
    )
    variants = [
        ("stock baggage (same entries)", W3CBaggagePropagator(), _stock_context, False, None),
        ("runctx, same run each hop", plain, _context, True, "stock baggage (same entries)"),
        ("runctx, new run each hop", plain, _context, True, "stock baggage (same entries)"),
        ("runctx signed+verify, same run", signed, _context, True, "stock baggage (same entries)"),
        ("runctx signed+verify, new run", signed, _context, True, "stock baggage (same entries)"),
    ]
    operations = []
    for name, propagator, build, check_run, _ in variants:
        contexts = [build(run) for run in (runs if "new run" in name else runs[:1])]
        operations.append(_hop(propagator, cycle(contexts), check_run))
    key = SigningKey("k1", b"benchmark-secret-0123456789")
    entries = runs[0].to_baggage_dict(lean_mode=True)
    signature = sign(key, entries)
    variants += [
        ("sign() alone (sender, once per run)", plain, _context, False, None),
        ("verify() alone (receiver, every hop)", plain, _context, False, None),
        ("hmac.digest sha256, 300 B (this machine)", plain, _context, False, None),
    ]
    message = b"m" * 300
    operations += [
        lambda: sign(key, entries),
        lambda: verify(signature, entries, [key]),
        lambda: hmac.digest(key.secret, message, hashlib.sha256),
    ]
    best = [float("inf")] * len(variants)
    for _ in range(3 if quick else 10):
        for index, operation in enumerate(operations):
            sample = ns_per_op(operation, ops=ops // 10, repeats=1)  # type: ignore[arg-type]
            best[index] = min(best[index], sample)
    rows = [
        Row(name, ns, ratio_to)
        for (name, _, _, _, ratio_to), ns in zip(variants, best, strict=True)
    ]
    by_name = {row.name: row.ns_per_op for row in rows}
    signing_cost = by_name["runctx signed+verify, new run"] - by_name["runctx, new run each hop"]
    rows[4] = Row(
        rows[4].name,
        rows[4].ns_per_op,
        rows[4].ratio_to,
        f"signing: {signing_cost / 1000:+.1f} µs per hop; target <= 1.3x",
    )
    rows[3] = Row(rows[3].name, rows[3].ns_per_op, rows[3].ratio_to, "target <= 1.1x")
    return rows
