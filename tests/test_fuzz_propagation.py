"""Fuzzing the propagator: no input makes extract raise or accept an invalid run.

``make test`` runs a bounded number of examples; ``make fuzz`` sets ``RUNCTX_FUZZ_EXAMPLES``
to run many more.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import baggage
from opentelemetry.context import Context

from otel_runctx import keys, stats
from otel_runctx.context import RunContext, get_run_context, with_run_context
from otel_runctx.propagation import RunContextPropagator
from otel_runctx.propagation.codec import decode, encode
from otel_runctx.propagation.signing import SIGNED_KEYS
from otel_runctx.settings import load_settings
from otel_runctx.validation import MAX_VALUE_LENGTH

EXAMPLES = int(os.environ.get("RUNCTX_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TRUST = RunContextPropagator(load_settings({}))
VERIFY = RunContextPropagator(
    load_settings(
        {
            "OTEL_RUNCTX_INBOUND": "verify",
            "OTEL_RUNCTX_SIGNING_KEYS": "k1:fuzz-secret-0123456789",
        }
    )
)
RUN_ID = "01234567-89ab-7def-8123-456789abcdef"
VALID_MEMBERS = [
    f"runctx.run_id={RUN_ID}",
    "runctx.workflow=wf",
    "runctx.event_id=e1",
    "runctx.customer_id=c1",
]

HOSTILE_HEADERS = [
    "",
    ",",
    ",,,,,",
    "=",
    "==,==",
    "runctx.run_id",
    "runctx.run_id=",
    ";;;;",
    "k=v;" + ";" * 5000,
    "k=v;p=1;q;r=%ZZ",
    "k" * 9000 + "=v",
    "k=" + "v" * 8200,
    ",".join(f"k{i}=v" for i in range(10_000)),
    ",".join(["runctx.customer_id=x"] * 2000),
    "\x00=\x00,runctx.run_id=\x00",
    "runctx.customer_id=%00,runctx.event_id=%",
    "runctx.customer_id=%%%%,runctx.event_id=%2",
    "runctx.customer_id=%FF%FE,runctx.event_id=%C0%AF",
    "runctx.attempt=abc",
    "runctx.attempt=99999999999999999999",
    "runctx.deadline=1e999",
    "runctx.run_id=" + "0" * 36,
    "runctx.run_id={" + RUN_ID + "}",
    "runctx.run_id=urn:uuid:" + RUN_ID,
    "runctx.customer_id=" + "%F0%9F%98%80" * 1000,
    "runctx.customer_id=" + "😀" * 3000,
    "\u2028=\u2029",
    "k=v\r\nX-Injected: 1",
    " \t , \t k \t = \t v \t ",
    ",".join([*VALID_MEMBERS, "runctx.run_id=" + RUN_ID]),
    ",".join([*VALID_MEMBERS, "runctx.attempt=0"]),
    ",".join([*VALID_MEMBERS, "runctx.parent_run_id=not-a-uuid"]),
    ",".join([*VALID_MEMBERS, "runctx.sig=v1:k1:" + "A" * 43]),
    ",".join([*VALID_MEMBERS, "runctx.sig=v1:k1:" + "A" * 5000]),
    ",".join(m.replace("=", " = ", 1) + ";prop" for m in VALID_MEMBERS),
]


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


def reference_run_entries(header: str) -> dict[str, str] | None:
    """An independent, slow reading of the run entries a header must carry to be accepted."""
    found: dict[str, str] = {}
    for member in header.split(","):
        pair = member.split(";")[0].strip(" \t")
        if not pair.startswith("runctx."):
            continue
        key, equals, raw = pair.partition("=")
        key, raw = key.strip(" \t"), raw.strip(" \t")
        if not equals or key in found:
            return None
        found[key] = unquote(raw)
    return found


def assert_accepted_runs_are_exactly_what_was_sent(header: object, context: Context) -> None:
    run = get_run_context(context)
    assert not [name for name in stats.snapshot() if name.startswith("errors.")]
    if run is None:
        return
    assert isinstance(header, str)
    sent = reference_run_entries(header)
    assert sent is not None, "a run was accepted from a header with a broken run member"
    attributes = run.to_span_attributes()
    for key in SIGNED_KEYS:
        if key in sent:
            assert str(attributes[key]) == sent[key]
    for key in (keys.RUN_ID, keys.WORKFLOW, keys.EVENT_ID, keys.CUSTOMER_ID):
        assert key in sent
    for value in sent.values():
        assert len(value) <= MAX_VALUE_LENGTH or value.isdigit()
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in value)
    uuid.UUID(run.run_id)


@pytest.mark.parametrize("header", HOSTILE_HEADERS, ids=range(len(HOSTILE_HEADERS)))
def test_hostile_headers_never_raise_or_yield_an_invalid_run(header: str) -> None:
    for propagator in (TRUST, VERIFY):
        context = propagator.extract({"baggage": header}, context=Context())
        assert_accepted_runs_are_exactly_what_was_sent(header, context)
    if header.startswith(",".join(VALID_MEMBERS)) and "runctx.sig" not in header:
        assert get_run_context(VERIFY.extract({"baggage": header}, context=Context())) is None


def test_the_hostile_corpus_accepts_only_the_well_formed_runs() -> None:
    accepted = [
        index
        for index, header in enumerate(HOSTILE_HEADERS)
        if get_run_context(TRUST.extract({"baggage": header}, context=Context())) is not None
    ]
    assert [HOSTILE_HEADERS[i] for i in accepted] == [HOSTILE_HEADERS[-3], HOSTILE_HEADERS[-1]]


@FUZZ
@given(st.text(max_size=300))
def test_any_text_header_is_safe(header: str) -> None:
    for propagator in (TRUST, VERIFY):
        assert_accepted_runs_are_exactly_what_was_sent(
            header, propagator.extract({"baggage": header}, context=Context())
        )


hostile_value = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["%", "%Z", "%C3", "%00", "abc", "0", "-1", "1e3", "nan", RUN_ID, ""]),
    st.text(alphabet="%0123456789ABCDEFabcdef", max_size=20),
)
run_key = st.sampled_from([*SIGNED_KEYS, "runctx.sig", "runctx.other"])
member = st.one_of(
    st.sampled_from(VALID_MEMBERS),
    st.builds(lambda k, v: f"{k}={v}", run_key, hostile_value),
    st.builds(lambda k, v: f"{k}={v}", st.text(max_size=10), hostile_value),
    st.builds(lambda m, p: f"{m};{p}", st.sampled_from(VALID_MEMBERS), st.text(max_size=10)),
)


@FUZZ
@given(st.lists(member, max_size=12), st.sampled_from([",", " , ", ",\t"]))
def test_structured_hostile_headers_are_safe(members: list[str], separator: str) -> None:
    header = separator.join(members)
    for propagator in (TRUST, VERIFY):
        assert_accepted_runs_are_exactly_what_was_sent(
            header, propagator.extract({"baggage": header}, context=Context())
        )


@FUZZ
@given(st.lists(st.one_of(st.text(max_size=50), st.binary(max_size=20), st.none()), max_size=8))
def test_header_lists_of_any_shape_are_safe(values: list[object]) -> None:
    context = TRUST.extract({"baggage": values}, context=Context())  # type: ignore[dict-item]
    assert not [name for name in stats.snapshot() if name.startswith("errors.")]
    assert isinstance(context, Context)


identifier = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=MAX_VALUE_LENGTH // 4
)


@FUZZ
@given(workflow=identifier, event_id=identifier, customer_id=identifier, tenant_id=identifier)
def test_any_valid_run_round_trips_exactly(
    workflow: str, event_id: str, customer_id: str, tenant_id: str
) -> None:
    sent = RunContext.create(
        workflow, event_id=event_id, customer_id=customer_id, tenant_id=tenant_id
    )
    for propagator in (TRUST, VERIFY):
        carrier: dict[str, str] = {}
        VERIFY.inject(carrier, context=with_run_context(sent))
        received = get_run_context(propagator.extract(carrier, context=Context()))
        assert received is not None
        assert (received.workflow, received.event_id) == (workflow, event_id)
        assert (received.customer_id, received.tenant_id) == (customer_id, tenant_id)


@FUZZ
@given(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=60), max_size=10))
def test_app_baggage_round_trips_exactly(entries: dict[str, str]) -> None:
    entries = {k: v for k, v in entries.items() if not k.startswith("runctx.")}
    context = Context()
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    carrier: dict[str, str] = {}
    TRUST.inject(carrier, context=context)
    received = dict(baggage.get_all(TRUST.extract(carrier, context=Context())))
    assert received == entries


@FUZZ
@given(st.text())
def test_percent_encoding_round_trips_any_text(text: str) -> None:
    for key in (False, True):
        encoded = encode(text, key=key)
        assert encoded.isascii() and "," not in encoded and ";" not in encoded
        assert decode(encoded) == text
