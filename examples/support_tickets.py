"""A small multi-tenant support-ticket pipeline, written as an app would be: no OTel setup in it.

Run it under ``opentelemetry-instrument`` (``make demo`` does) and every span it makes carries
the run it belongs to. Each ticket is one run of ``handle-ticket`` for its customer:

* ``classify`` — a child run that asks a (fake) LLM for a category;
* ``enrich`` — three lookups on a thread pool (the run carried by the executor instrumentor);
* ``draft`` — a child run that fans out two LLM calls with ``asyncio.gather``.

The tickets exercise a retry (``run(..., retry_of=previous)``), a deadline that times out, and a
failure. The pipeline keeps its own books (runs, tokens, failures per customer) and writes them
with ``--ground-truth FILE``, so a test can check the telemetry against what really happened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

import otel_runctx
from otel_runctx import RunStatus, require_run_context, run

tracer = trace.get_tracer("support-demo")
MODEL = "fake-llm-small"


@dataclass(frozen=True)
class Ticket:
    ticket_id: str
    customer: str
    text: str
    scenario: str = "normal"  # normal | flaky | slow | broken


TICKETS = (
    Ticket("T-1001", "acme", "The office printer is on fire again"),
    Ticket("T-1002", "acme", "Refund for order 42 never arrived", scenario="flaky"),
    Ticket("T-1003", "globex", "Password reset link loops back to login"),
    Ticket("T-1004", "globex", "Exporting the yearly report to CSV hangs", scenario="slow"),
    Ticket("T-1005", "initech", "TPS report cover sheet is missing", scenario="broken"),
    Ticket("T-1006", "initech", "Where is my red stapler"),
)


class TransientError(RuntimeError):
    """A hiccup worth retrying."""


class Books:
    """What the pipeline knows happened, independent of any telemetry."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, int]] = defaultdict(
            lambda: {
                "runs": 0,
                "child_runs": 0,
                "failed_runs": 0,
                "tokens": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "llm_calls": 0,
            }
        )

    def count(self, customer: str, key: str, amount: int = 1) -> None:
        self.customers[customer][key] += amount

    def as_dict(self) -> dict[str, Any]:
        return {"customers": dict(sorted(self.customers.items()))}


BOOKS = Books()


async def fake_llm(purpose: str, prompt: str, *, delay: float = 0.01) -> str:
    """A stand-in for an LLM client span, with the gen_ai attributes a real client sets."""
    with tracer.start_as_current_span(f"chat {MODEL}") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.request.model", MODEL)
        await asyncio.sleep(delay)
        input_tokens, output_tokens = 8 + 2 * len(prompt.split()), 16 + 4 * len(purpose)
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        customer = require_run_context().customer_id
        BOOKS.count(customer, "tokens", input_tokens + output_tokens)
        BOOKS.count(customer, "input_tokens", input_tokens)
        BOOKS.count(customer, "output_tokens", output_tokens)
        BOOKS.count(customer, "llm_calls")
        return f"{purpose}: {prompt[:24]}"


def classify(ticket: Ticket) -> str:
    with run("classify"):
        BOOKS.count(ticket.customer, "child_runs")
        return asyncio.run(fake_llm("classify", ticket.text))


def lookup(system: str, ticket: Ticket) -> str:
    with tracer.start_as_current_span(f"lookup {system}") as span:
        span.set_attribute("demo.system", system)
        time.sleep(0.005)
        return f"{system}:{ticket.customer}"


def enrich(ticket: Ticket) -> list[str]:
    with tracer.start_as_current_span("enrich"), ThreadPoolExecutor(max_workers=3) as pool:
        # A pool worker does not inherit the submitter's context by itself; under
        # opentelemetry-instrument, otel-runctx's executor instrumentor hands each job a copy.
        futures = [pool.submit(lookup, system, ticket) for system in ("crm", "billing", "history")]
        return [future.result() for future in futures]


async def draft(ticket: Ticket) -> list[str]:
    async with run("draft"):
        BOOKS.count(ticket.customer, "child_runs")
        delay = 2.0 if ticket.scenario == "slow" else 0.01
        calls = [fake_llm("reply", ticket.text, delay=delay), fake_llm("summary", ticket.text)]
        remaining = require_run_context().remaining_time_seconds()
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=remaining))


def process(ticket: Ticket, attempt: int) -> None:
    classify(ticket)
    if ticket.scenario == "flaky" and attempt == 1:
        raise TransientError("billing API returned 503")
    enrich(ticket)
    if ticket.scenario == "broken":
        raise ValueError(f"{ticket.ticket_id}: cover sheet template not found")
    asyncio.run(draft(ticket))


def handle(ticket: Ticket) -> str:
    deadline = 0.3 if ticket.scenario == "slow" else None
    scope = run(
        "handle-ticket",
        event_id=ticket.ticket_id,
        customer_id=ticket.customer,
        tenant_id=ticket.customer,
        deadline_seconds=deadline,
    )
    for attempt in (1, 2):
        BOOKS.count(ticket.customer, "runs")
        try:
            with scope as ctx:
                try:
                    process(ticket, attempt)
                except (TimeoutError, asyncio.TimeoutError):
                    _outcome(RunStatus.TIMEOUT, "draft did not finish before the deadline")
                    raise
            return "done" if attempt == 1 else "done after retry"
        except TransientError:
            BOOKS.count(ticket.customer, "failed_runs")
            scope = run("handle-ticket", retry_of=ctx)  # attempt 2: same event, own outcome
        except Exception as error:
            BOOKS.count(ticket.customer, "failed_runs")
            return f"{type(error).__name__}"
    return "gave up"


def _outcome(status: RunStatus, reason: str) -> None:
    """Record an explicit outcome when this otel-runctx has emit_outcome; harmless otherwise."""
    emit = getattr(otel_runctx, "emit_outcome", None)
    if emit is not None:
        emit(status, reason=reason)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ground-truth", help="write the pipeline's own books here (JSON)")
    args = parser.parse_args()
    for index, ticket in enumerate(TICKETS, 1):
        started = time.perf_counter()
        result = handle(ticket)
        took = time.perf_counter() - started
        print(
            f"  [{index}/{len(TICKETS)}] {ticket.ticket_id} {ticket.customer:<8} "
            f"{ticket.scenario:<7} -> {result} ({took * 1000:.0f} ms)",
            flush=True,
        )
    if args.ground_truth:
        with open(args.ground_truth, "w", encoding="utf-8") as handle_:
            json.dump(BOOKS.as_dict(), handle_, indent=2)


if __name__ == "__main__":
    main()
