"""``@workflow`` extractors get exactly the decorated function's arguments; early close cancels."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter

from otel_runctx import RunContext, require_run_context, workflow
from tests.test_outcomes import attributes_of, outcome_records


@dataclass
class Ticket:
    id: str
    customer: str


class Desk:
    prefix = "desk"

    @workflow("method", event_id=lambda self, t: f"{self.prefix}-{t.id}", customer_id="c")
    def handle(self, ticket: Ticket) -> RunContext:
        return require_run_context()

    @workflow("kwargs", event_id=lambda **kw: kw["ticket"].id, customer_id="c")
    def by_name(self, ticket: Ticket) -> RunContext:
        return require_run_context()

    @workflow("cls", event_id=lambda cls, t: f"{cls.prefix}-{t.id}", customer_id="c")
    @classmethod
    def klass(cls, ticket: Ticket) -> RunContext:
        return require_run_context()

    @workflow("static", event_id=lambda t: t.id, customer_id="c")
    @staticmethod
    def static(ticket: Ticket) -> RunContext:
        return require_run_context()


def test_a_method_extractor_receives_self() -> None:
    desk, ticket = Desk(), Ticket("T-1", "acme")
    assert desk.handle(ticket).event_id == "desk-T-1"
    assert desk.handle(ticket=ticket).event_id == "desk-T-1"
    assert Desk.handle(desk, ticket).event_id == "desk-T-1"
    assert Desk.klass(ticket).event_id == "desk-T-1"
    assert desk.klass(ticket).event_id == "desk-T-1"
    assert Desk.static(ticket).event_id == "T-1"


def test_a_keyword_extractor_works_for_positional_calls() -> None:
    assert Desk().by_name(Ticket("T-2", "acme")).event_id == "T-2"


def test_extractors_see_defaults_filled_in_however_the_caller_passed_arguments() -> None:
    seen: list[tuple[Any, ...]] = []

    def record(ticket: Ticket, priority: str, *, region: str) -> str:
        seen.append((ticket.id, priority, region))
        return ticket.id

    @workflow("f", event_id=record, customer_id=lambda t, p, *, region: t.customer)
    def handle(ticket: Ticket, priority: str = "low", *, region: str = "eu") -> RunContext:
        return require_run_context()

    ticket = Ticket("T-3", "acme")
    handle(ticket)
    handle(ticket=ticket, priority="high")
    handle(ticket, "mid", region="us")
    assert seen == [("T-3", "low", "eu"), ("T-3", "high", "eu"), ("T-3", "mid", "us")]
    assert handle(ticket).customer_id == "acme"


def test_an_extractor_that_cannot_take_the_arguments_fails_at_decoration() -> None:
    with pytest.raises(TypeError, match=r"event_id= extractor .*cannot accept.*self, ticket"):

        class Broken:
            @workflow("m", event_id=lambda t: t.id, customer_id="c")
            def handle(self, ticket: Ticket) -> None: ...

    with pytest.raises(TypeError, match="customer_id= extractor"):

        @workflow("f", event_id="e", customer_id=lambda: "c")
        def job(x: int) -> None: ...


def test_a_consumer_closing_a_generator_early_cancels_its_run(
    logs: InMemoryLogRecordExporter,
) -> None:
    @workflow("stream", event_id="e", customer_id="c")
    def stream() -> Iterator[int]:
        yield 1
        yield 2

    generator = stream()
    assert next(generator) == 1
    generator.close()
    list(stream())  # run to the end: success
    statuses = [
        (attributes_of(r)["runctx.outcome.status"], attributes_of(r).get("runctx.outcome.reason"))
        for r in outcome_records(logs)
    ]
    assert statuses == [("canceled", "closed by consumer"), ("success", None)]


async def test_a_consumer_closing_an_async_generator_early_cancels_its_run(
    logs: InMemoryLogRecordExporter,
) -> None:
    @workflow("astream", event_id="e", customer_id="c")
    async def astream() -> AsyncIterator[int]:
        while True:
            yield 1

    agen = astream()
    await agen.__anext__()
    await agen.aclose()
    (record,) = outcome_records(logs)
    assert attributes_of(record)["runctx.outcome.status"] == "canceled"
    assert attributes_of(record)["runctx.outcome.reason"] == "closed by consumer"
