"""Retries are runs: ``run(retry_of=...)``, ``as_retry_of`` for ``@workflow`` calls, tenacity."""

from __future__ import annotations

from typing import Any

import pytest
import tenacity
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_runctx import RunContext, get_run_context, require_run_context, run, workflow
from otel_runctx.integrations.tenacity import retry
from otel_runctx.runs import RetryChain, as_retry_of
from tests.test_outcomes import attributes_of, outcome_records


class Flaky(Exception):
    pass


def outcomes_by_run(logs: InMemoryLogRecordExporter) -> dict[str, dict[str, Any]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for record in outcome_records(logs):
        attributes = attributes_of(record)
        found.setdefault(attributes["runctx.run_id"], []).append(attributes)
    assert all(len(v) == 1 for v in found.values()), "exactly one outcome per run"
    return {run_id: v[0] for run_id, v in found.items()}


def test_run_retry_of_starts_the_next_attempt_with_its_own_root_span_and_outcome(
    spans: InMemorySpanExporter, logs: InMemoryLogRecordExporter
) -> None:
    with pytest.raises(Flaky), run("charge", event_id="E-1", customer_id="acme") as first:
        raise Flaky("card declined")
    with run("charge", retry_of=first) as second:
        inner = get_run_context()
    assert inner is second
    assert (second.attempt, second.retry_of_run_id) == (2, first.run_id)
    assert (second.event_id, second.customer_id, second.root_run_id) == (
        "E-1",
        "acme",
        first.root_run_id,
    )
    assert second.parent_run_id is None and second.run_id != first.run_id
    roots = {s.attributes["runctx.run_id"]: s for s in spans.get_finished_spans()}  # type: ignore[index]
    assert set(roots) == {first.run_id, second.run_id}
    assert roots[second.run_id].attributes["runctx.attempt"] == 2  # type: ignore[index]
    assert roots[second.run_id].parent is None
    outcomes = outcomes_by_run(logs)
    assert outcomes[first.run_id]["runctx.outcome.status"] == "failure"
    assert outcomes[second.run_id]["runctx.outcome.status"] == "success"
    assert outcomes[second.run_id]["runctx.attempt"] == 2


def test_a_retry_of_a_child_run_stays_a_child_of_the_same_parent() -> None:
    with run("ticket", event_id="E", customer_id="c") as parent:
        with run("step") as child:
            pass
        with run("step", retry_of=child) as again:
            pass
    assert again.parent_run_id == parent.run_id == child.parent_run_id
    assert (again.attempt, again.retry_of_run_id) == (2, child.run_id)


def test_as_retry_of_makes_the_next_workflow_call_a_retry_and_only_that_one() -> None:
    @workflow("handle", event_id=lambda ticket: ticket, customer_id="acme")
    def handle(ticket: str) -> tuple[RunContext, RunContext]:
        with run("nested") as nested:
            pass
        return require_run_context(), nested

    first, _ = handle("T-1")
    with as_retry_of(first):
        second, nested = handle("T-ignored")  # a retry keeps the event of the run it retries
        third, _ = handle("T-3")
    assert (second.attempt, second.retry_of_run_id, second.event_id) == (2, first.run_id, "T-1")
    assert (nested.attempt, nested.retry_of_run_id, nested.parent_run_id) == (
        1,
        None,
        second.run_id,
    )
    assert (third.attempt, third.event_id) == (1, "T-3")
    assert get_run_context() is None


def test_a_retry_chain_counts_attempts_and_names_the_previous_one() -> None:
    chain = RetryChain()
    seen = []
    for _ in range(3):
        with as_retry_of(chain), run("job", event_id="E", customer_id="c") as ctx:
            seen.append(ctx)
    assert [c.attempt for c in seen] == [1, 2, 3]
    assert [c.retry_of_run_id for c in seen] == [None, seen[0].run_id, seen[1].run_id]
    assert {c.root_run_id for c in seen} == {seen[0].run_id}


def test_a_retry_gets_a_fresh_deadline_only_when_asked() -> None:
    with run("job", event_id="E", customer_id="c", deadline_seconds=60) as first:
        pass
    with (
        run("job", retry_of=first) as kept,
        run("job", retry_of=first, deadline_seconds=600) as new,
    ):
        pass
    assert kept.deadline == first.deadline
    assert new.deadline is not None and first.deadline is not None
    assert new.deadline > first.deadline


def test_tenacity_attempts_are_retry_runs_with_one_outcome_each(
    spans: InMemorySpanExporter, logs: InMemoryLogRecordExporter
) -> None:
    calls: list[RunContext] = []

    @retry(stop=tenacity.stop_after_attempt(3), wait=tenacity.wait_none())
    @workflow("charge", event_id=lambda order: order, customer_id="acme")
    def charge(order: str) -> str:
        calls.append(require_run_context())
        if len(calls) < 3:
            raise Flaky(f"attempt {len(calls)}")
        return "charged"

    assert charge("O-1") == "charged"
    assert [c.attempt for c in calls] == [1, 2, 3]
    assert [c.retry_of_run_id for c in calls] == [None, calls[0].run_id, calls[1].run_id]
    assert {c.root_run_id for c in calls} == {calls[0].run_id}
    assert {c.event_id for c in calls} == {"O-1"}
    outcomes = outcomes_by_run(logs)
    assert [outcomes[c.run_id]["runctx.outcome.status"] for c in calls] == [
        "failure",
        "failure",
        "success",
    ]
    root_spans = [s for s in spans.get_finished_spans() if s.name == "run charge"]
    assert len(root_spans) == 3 and all(s.parent is None for s in root_spans)
    # A second call is a new event: its chain starts again at attempt 1.
    calls.clear()
    assert charge("O-2") == "charged"
    assert [c.attempt for c in calls] == [1, 2, 3]


def test_tenacity_giving_up_leaves_the_last_attempt_telling_how_the_event_ended(
    logs: InMemoryLogRecordExporter,
) -> None:
    calls: list[RunContext] = []

    @retry(stop=tenacity.stop_after_attempt(2), reraise=True)
    @workflow("charge", event_id="O-9", customer_id="acme")
    def charge() -> None:
        calls.append(require_run_context())
        raise Flaky("still down")

    with pytest.raises(Flaky):
        charge()
    outcomes = outcomes_by_run(logs)
    assert [outcomes[c.run_id]["runctx.outcome.status"] for c in calls] == ["failure", "failure"]
    assert calls[-1].attempt == 2
    assert charge.retry.stop is not None  # tenacity's own attributes are still there


async def test_tenacity_async_attempts_are_retry_runs() -> None:
    calls: list[RunContext] = []

    @retry(stop=tenacity.stop_after_attempt(3))
    @workflow("fetch", event_id="E", customer_id="c")
    async def fetch() -> int:
        calls.append(require_run_context())
        if len(calls) < 2:
            raise Flaky()
        return len(calls)

    assert await fetch() == 2
    assert [(c.attempt, c.retry_of_run_id) for c in calls] == [(1, None), (2, calls[0].run_id)]


def test_tenacity_bare_decorator_works_around_a_run() -> None:
    calls: list[RunContext] = []

    @retry
    def work() -> None:
        with run("inline", event_id="E", customer_id="c") as ctx:
            calls.append(ctx)
            if len(calls) < 2:
                raise Flaky()

    work()
    assert [c.attempt for c in calls] == [1, 2]


def test_a_run_past_its_deadline_has_an_error_root_span(spans: InMemorySpanExporter) -> None:
    with run("slow", event_id="E", customer_id="c", deadline_seconds=0.0001) as ctx:
        while not ctx.is_past_deadline():
            pass
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "deadline passed"


def test_a_celery_retry_header_is_validated_like_any_inbound_run() -> None:
    import json
    from types import SimpleNamespace

    from otel_runctx import stats
    from otel_runctx.integrations.celery import RETRY_HEADER, previous_attempt

    with run("charge", event_id="E", customer_id="c") as first:
        pass
    good = json.dumps(first.to_baggage_dict(lean_mode=False))
    assert previous_attempt(SimpleNamespace(retries=1, **{RETRY_HEADER: good})) == first
    assert previous_attempt(SimpleNamespace(retries=0, **{RETRY_HEADER: good})) is None
    assert previous_attempt(SimpleNamespace(retries=1, headers={RETRY_HEADER: good})) == first
    before = stats.snapshot().get("errors.celery.retry_header", 0)
    forged = json.dumps({**json.loads(good), "runctx.run_id": "not-a-uuid"})
    for bad in (forged, "{not json", "[1]"):
        assert previous_attempt(SimpleNamespace(retries=1, **{RETRY_HEADER: bad})) is None
    assert stats.snapshot().get("errors.celery.retry_header", 0) == before + 3
