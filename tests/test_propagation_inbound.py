"""Inbound runs: validated all-or-nothing, counted, logged at most once per interval."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from opentelemetry import baggage
from opentelemetry.context import Context

from otel_runctx import stats
from otel_runctx.context import get_run_context
from otel_runctx.propagation import RunContextPropagator, propagation_stats
from otel_runctx.settings import load_settings

RUN_ID = "01234567-89ab-7def-8123-456789abcdef"
VALID = {
    "runctx.run_id": RUN_ID,
    "runctx.workflow": "checkout",
    "runctx.event_id": "evt-1",
    "runctx.customer_id": "acme",
}


@pytest.fixture(autouse=True)
def fresh_stats() -> Iterator[None]:
    stats.reset()
    yield
    stats.reset()


def header(entries: dict[str, str], *extra: str) -> str:
    return ",".join([*(f"{k}={v}" for k, v in entries.items()), *extra])


def extract(text: str, **env: str) -> Context:
    return RunContextPropagator(load_settings(env)).extract({"baggage": text}, context=Context())


def test_a_valid_inbound_run_is_accepted_with_spaces_and_properties_tolerated() -> None:
    text = f" runctx.run_id = {RUN_ID} ;prop=1 ,runctx.workflow=checkout,"
    text += "runctx.event_id=evt-1,\trunctxish=1,runctx.customer_id=acme%20inc"
    run = get_run_context(extract(text))
    assert run is not None
    assert (run.run_id, run.customer_id) == (RUN_ID, "acme inc")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("runctx.run_id", "not-a-uuid"),
        ("runctx.run_id", "0123456789ab7def8123456789abcdef"),  # UUID without dashes
        ("runctx.parent_run_id", "nope"),
        ("runctx.root_run_id", ""),
        ("runctx.attempt", "abc"),
        ("runctx.attempt", "0"),
        ("runctx.attempt", "-1"),
        ("runctx.attempt", "1e3"),
        ("runctx.deadline", "inf"),
        ("runctx.deadline", "nan"),
        ("runctx.deadline", "1_000"),
        ("runctx.customer_id", "a%00b"),  # NUL
        ("runctx.customer_id", "a%0Ab"),  # newline
        ("runctx.customer_id", "a%C2%85b"),  # C1 control (NEL)
        ("runctx.customer_id", "x" * 257),
        ("runctx.customer_id", "%ZZ"),  # broken percent-encoding
        ("runctx.customer_id", "%C3"),  # truncated UTF-8
        ("runctx.customer_id", "a b"),  # raw space: not a baggage-octet
        ("runctx.event_id", ""),
    ],
)
def test_one_invalid_field_drops_the_whole_inbound_run(key: str, value: str) -> None:
    entries = {**VALID, key: value}
    context = extract(header(entries, "app=kept"))
    assert get_run_context(context) is None
    assert baggage.get_baggage("app", context) == "kept"  # the request is still served
    assert propagation_stats() == {"propagation.rejected_invalid": 1}


@pytest.mark.parametrize("missing", sorted(VALID))
def test_a_missing_required_field_drops_the_run(missing: str) -> None:
    entries = {k: v for k, v in VALID.items() if k != missing}
    assert get_run_context(extract(header(entries))) is None
    assert propagation_stats() == {"propagation.rejected_invalid": 1}


def test_a_repeated_run_key_drops_the_run_even_with_equal_values() -> None:
    assert get_run_context(extract(header(VALID, "runctx.customer_id=acme"))) is None
    assert propagation_stats() == {"propagation.rejected_invalid": 1}


def test_a_run_member_without_equals_drops_the_run() -> None:
    assert get_run_context(extract(header(VALID, "runctx.tenant_id"))) is None


def test_a_percent_encoded_run_key_cannot_be_smuggled_in_as_app_baggage() -> None:
    context = extract(header(VALID, "runctx%2Ecustomer_id=forged"))
    assert "runctx.customer_id" not in baggage.get_all(context)
    run = get_run_context(context)
    assert run is not None and run.customer_id == "acme"


def test_unknown_runctx_keys_are_ignored_not_passed_on() -> None:
    context = extract(header(VALID, "runctx.future_field=1"))
    assert get_run_context(context) is not None
    assert dict(baggage.get_all(context)) == {}


def test_invalid_app_members_are_skipped_and_counted() -> None:
    context = extract(header(VALID, "good=1", "no-equals", "bad key=1", "k=%ZZ", "é=1"))
    assert dict(baggage.get_all(context)) == {"good": "1"}
    assert get_run_context(context) is not None
    assert propagation_stats()["propagation.app_entries_rejected"] == 4


def test_rejections_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="otel_runctx")
    from otel_runctx.propagation import policy

    policy._last_logged.clear()
    for _ in range(50):
        extract(header({**VALID, "runctx.attempt": "abc"}))
    assert propagation_stats() == {"propagation.rejected_invalid": 50}
    lines = [r for r in caplog.records if "rejected_invalid" in r.getMessage()]
    assert len(lines) == 1


def test_ignore_mode_drops_inbound_runs_but_keeps_app_baggage() -> None:
    context = extract(header(VALID, "app=1"), OTEL_RUNCTX_INBOUND="ignore")
    assert get_run_context(context) is None
    assert baggage.get_baggage("app", context) == "1"
    assert propagation_stats() == {"propagation.ignored": 1}


def test_an_oversized_header_is_ignored_whole_and_counted() -> None:
    context = extract(header(VALID, "pad=" + "x" * 8200))
    assert get_run_context(context) is None and dict(baggage.get_all(context)) == {}
    assert propagation_stats() == {"propagation.header_oversized": 1}


def test_run_keys_past_the_member_limit_are_still_judged_whole() -> None:
    # Another sender may put the run last; app members past 180 are dropped, run ones are not,
    # so a run is never accepted with some of its fields cut off.
    padding = [f"a{i}=1" for i in range(200)]
    text = ",".join([*padding, header({**VALID, "runctx.attempt": "abc"})])
    assert get_run_context(extract(text)) is None
    run = get_run_context(extract(",".join([*padding, header(VALID)])))
    assert run is not None and run.run_id == RUN_ID


def test_10000_entries_are_handled_without_error() -> None:
    # 10,000 members do not fit in 8192 bytes, so they are ignored as one oversized header...
    many = ",".join(f"k{i}=v" for i in range(10_000))
    context = extract(header(VALID, many))
    assert get_run_context(context) is None and dict(baggage.get_all(context)) == {}
    # ...4,000 empty members that do fit are parsed and skipped...
    context = extract(header(VALID) + "," * 4000)
    assert get_run_context(context) is not None
    # ...and 10,000 separate header values are cut off once past the size limit.
    values = [header(VALID)] + [f"k{i}=v" for i in range(10_000)]
    propagator = RunContextPropagator(load_settings({}))
    context = propagator.extract({"baggage": values}, context=Context())
    assert get_run_context(context) is None
    assert propagation_stats()["propagation.header_oversized"] == 2
