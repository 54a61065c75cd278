"""RunContext: creation, validation, views, retries, baggage round trips, deadline, cancel."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid

import pytest

from otel_runctx import RunContext, RunStatus
from otel_runctx.settings import reload_settings
from otel_runctx.validation import MAX_VALUE_LENGTH


@pytest.fixture(autouse=True)
def _default_settings() -> None:
    reload_settings({})


def make(**overrides: object) -> RunContext:
    fields: dict[str, object] = {"event_id": "evt-1", "customer_id": "cust-1"}
    fields.update(overrides)
    return RunContext.create("triage", **fields)  # type: ignore[arg-type]


def test_create_fills_every_contract_field() -> None:
    ctx = make(tenant_id="acme")
    assert uuid.UUID(ctx.run_id).version == 7
    assert ctx.workflow == "triage"
    assert (ctx.event_id, ctx.customer_id, ctx.tenant_id) == ("evt-1", "cust-1", "acme")
    assert ctx.environment == "production"
    assert ctx.root_run_id == ctx.run_id
    assert ctx.parent_run_id is None and ctx.retry_of_run_id is None
    assert ctx.attempt == 1 and ctx.deadline is None


def test_run_context_is_frozen_and_slotted() -> None:
    ctx = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.customer_id = "someone-else"  # type: ignore[misc]
    assert not hasattr(ctx, "__dict__")


def test_environment_comes_from_settings_unless_given() -> None:
    reload_settings({"OTEL_RUNCTX_ENVIRONMENT": "staging"})
    assert make().environment == "staging"
    assert make(environment="dev").environment == "dev"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("event_id", ""),
        ("customer_id", ""),
        ("event_id", "a\x00b"),
        ("customer_id", "line\nbreak"),
        ("tenant_id", "\x7f"),
        ("tenant_id", "\x85"),
        ("event_id", "x" * (MAX_VALUE_LENGTH + 1)),
        ("customer_id", 42),
    ],
)
def test_create_rejects_invalid_fields_when_strict(field: str, value: object, strict: None) -> None:
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


def test_create_accepts_values_at_the_length_limit_and_unicode() -> None:
    ctx = make(event_id="e" * MAX_VALUE_LENGTH, customer_id="Zoë 株式会社")
    assert len(ctx.event_id) == MAX_VALUE_LENGTH
    assert ctx.customer_id == "Zoë 株式会社"


def test_create_rejects_empty_workflow() -> None:
    with pytest.raises(ValueError, match="workflow"):
        RunContext.create("", event_id="e", customer_id="c")


@pytest.mark.parametrize("attempt", [0, -1, True, "1"])
def test_constructor_rejects_non_positive_or_non_int_attempt(attempt: object) -> None:
    ctx = make()
    with pytest.raises(ValueError, match="attempt"):
        dataclasses.replace(ctx, attempt=attempt)


@pytest.mark.parametrize("seconds", [0, -5, float("nan")])
def test_create_rejects_non_positive_deadline(seconds: float) -> None:
    with pytest.raises(ValueError, match="deadline_seconds"):
        make(deadline_seconds=seconds)


def test_span_attributes_carry_every_set_field_and_are_built_once() -> None:
    ctx = make(tenant_id="acme", deadline_seconds=60)
    attributes = ctx.to_span_attributes()
    assert dict(attributes) == {
        "runctx.run_id": ctx.run_id,
        "runctx.root_run_id": ctx.run_id,
        "runctx.workflow": "triage",
        "runctx.event_id": "evt-1",
        "runctx.customer_id": "cust-1",
        "runctx.tenant_id": "acme",
        "runctx.environment": "production",
        "runctx.attempt": 1,
        "runctx.deadline": ctx.deadline,
    }
    assert isinstance(attributes["runctx.attempt"], int)
    assert ctx.to_span_attributes() is attributes
    with pytest.raises(TypeError):
        attributes["runctx.customer_id"] = "x"  # type: ignore[index]


def test_create_retry_is_the_next_attempt_of_the_same_work() -> None:
    first = make(tenant_id="acme")
    first.to_span_attributes()
    first.request_cancellation("stop")
    retry = RunContext.create_retry(first)
    assert retry.run_id != first.run_id
    assert retry.attempt == 2
    assert retry.retry_of_run_id == first.run_id
    assert retry.root_run_id == first.root_run_id
    assert (retry.event_id, retry.customer_id, retry.tenant_id) == ("evt-1", "cust-1", "acme")
    assert retry.to_span_attributes()["runctx.run_id"] == retry.run_id
    assert not retry.is_cancelled(), "a retry starts with fresh cancellation state"
    assert RunContext.create_retry(retry).attempt == 3


def test_create_child_inherits_ids_and_links_to_parent() -> None:
    parent = make(tenant_id="acme")
    child = parent.create_child("summarise")
    assert child.parent_run_id == parent.run_id
    assert child.root_run_id == parent.root_run_id
    assert (child.event_id, child.customer_id, child.tenant_id) == ("evt-1", "cust-1", "acme")
    other = parent.create_child("summarise", customer_id="cust-2", tenant_id="globex")
    assert (other.customer_id, other.tenant_id) == ("cust-2", "globex")
    grandchild = child.create_child("step")
    assert grandchild.root_run_id == parent.run_id
    assert grandchild.parent_run_id == child.run_id


def test_child_keeps_the_earlier_of_its_own_and_its_parents_deadline() -> None:
    parent = make(deadline_seconds=10)
    assert parent.create_child("a").deadline == parent.deadline
    assert parent.create_child("b", deadline_seconds=3600).deadline == parent.deadline
    sooner = parent.create_child("c", deadline_seconds=1)
    assert sooner.deadline is not None and parent.deadline is not None
    assert sooner.deadline < parent.deadline


def test_lean_baggage_sends_only_what_a_callee_needs() -> None:
    ctx = make(tenant_id="acme", deadline_seconds=30)
    assert ctx.to_baggage_dict(lean_mode=True) == {
        "runctx.run_id": ctx.run_id,
        "runctx.workflow": "triage",
        "runctx.event_id": "evt-1",
        "runctx.customer_id": "cust-1",
        "runctx.tenant_id": "acme",
    }
    assert "runctx.tenant_id" not in make().to_baggage_dict(lean_mode=True)


def test_lean_baggage_of_a_nested_run_or_retry_keeps_its_place_in_the_tree() -> None:
    top = make()
    child = top.create_child("step")
    lean = child.to_baggage_dict(lean_mode=True)
    assert lean["runctx.root_run_id"] == top.run_id
    assert lean["runctx.parent_run_id"] == top.run_id
    rebuilt = RunContext.from_baggage(lean)
    assert rebuilt is not None and rebuilt.root_run_id == top.run_id
    retry = RunContext.create_retry(top).to_baggage_dict(lean_mode=True)
    assert retry["runctx.root_run_id"] == top.run_id
    assert "runctx.parent_run_id" not in retry
    assert "runctx.root_run_id" not in top.to_baggage_dict(lean_mode=True)


def test_full_baggage_sends_every_set_field_as_strings() -> None:
    ctx = make(tenant_id="acme", deadline_seconds=30).create_child("step")
    full = ctx.to_baggage_dict(lean_mode=False)
    assert set(full) == set(ctx.to_span_attributes())
    assert full["runctx.attempt"] == "1"
    assert full["runctx.parent_run_id"] == ctx.parent_run_id
    assert all(isinstance(v, str) for v in full.values())


def test_baggage_mode_defaults_to_the_configured_propagation_mode() -> None:
    ctx = make(deadline_seconds=30)
    assert "runctx.deadline" not in ctx.to_baggage_dict()
    reload_settings({"OTEL_RUNCTX_PROPAGATION_MODE": "full"})
    assert "runctx.deadline" in ctx.to_baggage_dict()


@pytest.mark.parametrize("lean", [True, False])
def test_baggage_round_trip_rebuilds_the_same_run(lean: bool) -> None:
    ctx = make(tenant_id="acme", deadline_seconds=30).create_child("step")
    rebuilt = RunContext.from_baggage(ctx.to_baggage_dict(lean_mode=lean))
    assert rebuilt is not None
    assert (rebuilt.run_id, rebuilt.event_id, rebuilt.customer_id, rebuilt.tenant_id) == (
        ctx.run_id,
        ctx.event_id,
        ctx.customer_id,
        ctx.tenant_id,
    )
    if not lean:
        assert rebuilt == ctx


def valid_baggage() -> dict[str, str]:
    return make().to_baggage_dict(lean_mode=False)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("runctx.run_id", None),
        ("runctx.workflow", None),
        ("runctx.event_id", None),
        ("runctx.customer_id", None),
        ("runctx.run_id", "not-a-uuid"),
        ("runctx.run_id", "{" + str(uuid.uuid4()) + "}"),
        ("runctx.root_run_id", "123"),
        ("runctx.parent_run_id", "nope"),
        ("runctx.attempt", "abc"),
        ("runctx.attempt", "0"),
        ("runctx.attempt", "-1"),
        ("runctx.attempt", "1.5"),
        ("runctx.attempt", "9" * 40),
        ("runctx.customer_id", ""),
        ("runctx.customer_id", "evil\x00"),
        ("runctx.tenant_id", "t" * (MAX_VALUE_LENGTH + 1)),
        ("runctx.deadline", "soon"),
        ("runctx.deadline", "inf"),
    ],
)
def test_from_baggage_returns_none_for_missing_or_invalid_fields(
    key: str, value: str | None
) -> None:
    baggage = valid_baggage()
    if value is None:
        del baggage[key]
    else:
        baggage[key] = value
    assert RunContext.from_baggage(baggage) is None


def test_from_baggage_never_raises_on_non_string_values() -> None:
    baggage: dict[str, object] = dict(valid_baggage())
    baggage["runctx.customer_id"] = object()
    assert RunContext.from_baggage(baggage) is None  # type: ignore[arg-type]


def test_deadline_and_remaining_time() -> None:
    ctx = make(deadline_seconds=60)
    remaining = ctx.remaining_time_seconds()
    assert remaining is not None and 59 < remaining <= 60
    assert not ctx.is_past_deadline()
    expired = dataclasses.replace(ctx, deadline=time.time() - 1)
    assert expired.is_past_deadline()
    assert expired.remaining_time_seconds() == 0.0
    assert make().remaining_time_seconds() is None
    assert not make().is_past_deadline()


def test_cancellation_is_shared_by_copies_and_keeps_the_first_reason() -> None:
    ctx = make()
    copy = dataclasses.replace(ctx, workflow="renamed")
    assert not ctx.is_cancelled() and ctx.cancellation_reason is None
    copy.request_cancellation("shutdown")
    ctx.request_cancellation("later reason")
    assert ctx.is_cancelled() and copy.is_cancelled()
    assert ctx.cancellation_reason == "shutdown"


def test_cancelling_a_parent_cancels_its_children_but_not_the_reverse() -> None:
    parent = make()
    child = parent.create_child("step")
    sibling = parent.create_child("other")
    child.request_cancellation("child only")
    assert not parent.is_cancelled() and not sibling.is_cancelled()
    parent.request_cancellation("all")
    assert sibling.is_cancelled() and sibling.cancellation_reason == "all"


def test_cancellation_from_another_thread_is_seen() -> None:
    ctx = make()
    seen = threading.Event()

    def watcher() -> None:
        while not ctx.is_cancelled():
            time.sleep(0.001)
        seen.set()

    thread = threading.Thread(target=watcher)
    thread.start()
    ctx.request_cancellation()
    thread.join(timeout=5)
    assert seen.is_set()
    assert ctx.cancellation_reason == "user"


def test_run_status_values_are_the_contract() -> None:
    assert {s.name: s.value for s in RunStatus} == {
        "SUCCESS": "success",
        "FAILURE": "failure",
        "PARTIAL": "partial",
        "TIMEOUT": "timeout",
        "CANCELED": "canceled",
    }
    assert RunStatus("timeout") is RunStatus.TIMEOUT
    assert RunStatus.SUCCESS == "success"


def test_created_runs_equal_runs_built_through_the_checked_constructor() -> None:
    """RunContext.create/create_child skip __post_init__ (a fast constructor): every field
    must still be set, and set as the checked dataclass constructor would set it."""
    import dataclasses

    parent = RunContext.create("wf", event_id="e-1", customer_id="c-1", tenant_id="t-1")
    child = parent.create_child("child", customer_id="c-2", deadline_seconds=30)
    for made in (parent, child):
        rebuilt = RunContext(
            **{f.name: getattr(made, f.name) for f in dataclasses.fields(RunContext) if f.init}
        )
        assert rebuilt == made
        for f in dataclasses.fields(RunContext):
            getattr(made, f.name)  # AttributeError if the fast constructor missed a slot
    assert child.root_run_id == parent.run_id and child.parent_run_id == parent.run_id
    assert parent.root_run_id == parent.run_id and parent.attempt == 1
    with pytest.raises(ValueError):
        RunContext.create("bad\nworkflow", event_id="e", customer_id="c")
    with pytest.raises(ValueError):
        parent.create_child("bad\x00child")
