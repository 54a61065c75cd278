"""Invalid ids from data never stop business code; strict mode raises (issue 12)."""

from __future__ import annotations

import logging

import pytest

from otel_runctx import run, stats, workflow
from otel_runctx.validation import INVALID_MARKER, MAX_VALUE_LENGTH


@workflow("lookup", event_id=lambda order: order["id"], customer_id=lambda order: order["cust"])
def handle(order: dict[str, object]) -> str:
    return "served"


def test_an_int_id_from_an_extractor_becomes_its_string() -> None:
    stats.reset()
    seen: list[str] = []

    @workflow("lookup", event_id=lambda n: n, customer_id="c")
    def job(n: int) -> None:
        from otel_runctx import require_run_context

        seen.append(require_run_context().event_id)

    job(1234)
    assert seen == ["1234"]
    assert stats.snapshot()["validation.invalid_event_id"] == 1


@pytest.mark.parametrize(
    "bad", ["x" * (MAX_VALUE_LENGTH + 1), "line\nbreak", "", object(), 3.5, b"bytes"]
)
def test_other_invalid_ids_become_the_marker_and_the_function_runs(bad: object) -> None:
    assert handle({"id": "evt", "cust": bad}) == "served"
    with run("direct", event_id="e", customer_id=bad) as ctx:  # type: ignore[arg-type]
        assert ctx.customer_id == INVALID_MARKER


def test_the_problem_is_counted_each_time_and_logged_once_per_field(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from otel_runctx import validation

    validation._logged_fields.discard("tenant_id")
    stats.reset()
    with caplog.at_level(logging.WARNING, logger="otel_runctx"):
        for _ in range(5):
            with run("t", event_id="e", customer_id="c", tenant_id="\x00"):
                pass
    assert stats.snapshot()["validation.invalid_tenant_id"] == 5
    lines = [r for r in caplog.records if "invalid tenant_id" in r.getMessage()]
    assert len(lines) == 1


def test_strict_mode_raises_as_before(strict: None) -> None:
    with pytest.raises(ValueError, match="customer_id"):
        handle({"id": "evt", "cust": "x" * (MAX_VALUE_LENGTH + 1)})


def test_a_missing_id_at_top_level_is_still_an_immediate_error() -> None:
    with pytest.raises(ValueError, match="customer_id"):
        with run("t", event_id="e"):
            pass


def test_a_child_run_with_an_invalid_override_is_lenient_too() -> None:
    with run("parent", event_id="e", customer_id="c"):
        with run("child", customer_id=42) as child:  # type: ignore[arg-type]
            assert child.customer_id == "42"
