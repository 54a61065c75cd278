"""Generated telemetry for ``otel-runctx report``: N records shaped like real runs, and books.

Each **event** belongs to a customer and has one or two attempts (a failed first attempt is
retried); each attempt is a root run ``triage`` in service ``api`` with a child run
``summarise`` in service ``worker``. Every run has a root span, plain spans and LLM spans, and
ends with a ``runctx.outcome`` event carrying its exact usage (as the usage roll-up writes it).
Mixed in, because real data has them:

- **sampling**: some events run at probability 0.25 and, as a run-consistent sampler does, either
  all their spans are kept or none are; their outcomes are always there;
- **unpriced models**: some LLM calls use a model the price table does not know;
- **lost outcomes**: some child runs have no outcome (the report falls back to their spans);
- **duplicate outcomes**: some outcomes were delivered twice (each run must count once);
- spans outside any run.

``Books`` are what the generator knows to be true per event, independent of any report code.
``benchmarks/report_otlp.py`` re-encodes the same records as OTLP JSON lines.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRICED_MODEL = "fake-llm-small"
UNPRICED_MODEL = "fake-llm-unpriced"
#: examples/prices.json: per 1M input / output tokens.
PRICE_IN, PRICE_OUT = 3.0, 15.0
_BASE_NS = 1_790_000_000_000_000_000


@dataclass
class EventBooks:
    """The truth about one event, kept while generating it."""

    customer_id: str
    runs: int = 0
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    status: str = "unknown"
    spans_emitted: int = 0  # before sampling


@dataclass
class Books:
    events: dict[str, EventBooks] = field(default_factory=dict)
    records: int = 0


def _cost(model: str, tokens_in: int, tokens_out: int) -> float:
    if model != PRICED_MODEL:
        return 0.0
    return (tokens_in * PRICE_IN + tokens_out * PRICE_OUT) / 1e6


class _Generator:
    def __init__(self, seed: int, customers: int, spans_per_run: int) -> None:
        self.rng = random.Random(seed)
        self.customers = customers
        self.spans_per_run = max(2, spans_per_run)
        self.books = Books()
        self.clock = _BASE_NS
        self.ids = 0

    def next_id(self, width: int) -> str:
        self.ids += 1
        return f"{self.ids:0{width}x}"

    def run_id(self) -> str:
        self.ids += 1
        return f"0190a000-0000-7000-8000-{self.ids:012x}"

    def events(self) -> Iterator[dict[str, Any]]:
        number = 0
        while True:
            number += 1
            yield from self.event(number)

    def event(self, number: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        event_id = f"EV-{number:07d}"
        customer = f"cust-{rng.randrange(self.customers):03d}"
        books = self.books.events[event_id] = EventBooks(customer)
        attempts = 2 if rng.random() < 0.15 else 1
        probability = 0.25 if rng.random() < 0.2 else 1.0
        kept = probability >= 1.0 or rng.random() < probability
        unpriced = rng.random() < 0.1
        root_run_id: str | None = None
        previous: str | None = None
        for attempt in range(1, attempts + 1):
            run_id = self.run_id()
            root_run_id = root_run_id or run_id
            lineage = {
                "runctx.event_id": event_id,
                "runctx.customer_id": customer,
                "runctx.root_run_id": root_run_id,
                "runctx.attempt": attempt,
            }
            if previous:
                lineage["runctx.retry_of_run_id"] = previous
            status = "failure" if attempt < attempts else "success"
            trace_id = self.next_id(32)
            child_id = self.run_id()
            child = {**lineage, "runctx.run_id": child_id, "runctx.parent_run_id": run_id}
            child.pop("runctx.retry_of_run_id", None)
            child["runctx.attempt"] = 1
            books.attempts += 1
            books.status = status
            # The child runs in another service, inside its parent's time.
            yield from self.run(
                {**lineage, "runctx.run_id": run_id},
                "triage",
                "api",
                trace_id,
                status,
                probability,
                kept,
                unpriced and attempt == attempts,
                books,
                child=(child, "summarise", "worker"),
            )
            previous = run_id

    def run(
        self,
        lineage: dict[str, Any],
        workflow: str,
        service: str,
        trace_id: str,
        status: str,
        probability: float,
        kept: bool,
        unpriced: bool,
        books: EventBooks,
        child: tuple[dict[str, Any], str, str] | None = None,
        parent_span: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        rng = self.rng
        attributes = {**lineage, "runctx.workflow": workflow, "runctx.environment": "bench"}
        books.runs += 1
        start = self.clock
        root_span = self.next_id(16)
        spans: list[dict[str, Any]] = []
        tokens_in = tokens_out = 0
        cost = 0.0
        models: set[str] = set()
        count = self.spans_per_run - 1 - (self.spans_per_run // 2 if child else 0)
        for index in range(max(1, count)):
            self.clock += rng.randrange(50_000, 2_000_000)
            extra: dict[str, Any] = {}
            name = f"step {index % 7}"
            if index % 4 == 1:
                model = UNPRICED_MODEL if unpriced and index == 1 else PRICED_MODEL
                used_in, used_out = rng.randrange(50, 800), rng.randrange(5, 200)
                extra = {
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": used_in,
                    "gen_ai.usage.output_tokens": used_out,
                }
                tokens_in, tokens_out = tokens_in + used_in, tokens_out + used_out
                cost += _cost(model, used_in, used_out)
                models.add(model)
                name = "chat fake-llm"
            end = self.clock + rng.randrange(10_000, 900_000)
            spans.append(
                self.span(name, trace_id, root_span, self.clock, end, {**attributes, **extra},
                          service, error=False)
            )  # fmt: skip
        if child is not None:
            self.clock += 100_000
            yield from self.run(
                *child[:1], child[1], child[2], trace_id, "success", probability, kept,
                False, books, parent_span=root_span,
            )  # fmt: skip
        self.clock += rng.randrange(100_000, 1_000_000)
        end = self.clock
        lost = child is None and rng.random() < 0.05 and probability >= 1.0
        usage = {
            "runctx.usage.span_count": len(spans) + 1,
            "runctx.usage.input_tokens": tokens_in,
            "runctx.usage.output_tokens": tokens_out,
            "runctx.usage.cost": cost,
            "runctx.usage.cost_currency": "USD",
        }
        unpriced_models = sorted(m for m in models if m != PRICED_MODEL)
        if unpriced_models:
            usage["runctx.usage.cost_unpriced_models"] = unpriced_models
        # A lost outcome: the run's process never delivered it, so its root span has no roll-up.
        root_attributes = {**attributes, **({} if lost else usage)}
        spans.insert(
            0,
            self.span(f"run {workflow}", trace_id, parent_span, start, end, root_attributes,
                      service, error=status == "failure"),
        )  # fmt: skip
        books.spans_emitted += len(spans)
        books.input_tokens += tokens_in
        books.output_tokens += tokens_out
        if not lost:
            books.cost += cost
        if kept:
            yield from spans
        if lost:
            return
        outcome = {
            **attributes,
            **usage,
            "runctx.outcome.status": status,
            "runctx.outcome.id": self.next_id(16),
            "runctx.outcome.duration_ms": (end - start) / 1e6,
            "runctx.sample.probability": probability,
            "runctx.usage.complete": True,
        }
        record = self.log(trace_id, root_span, end, outcome, service, f"run {workflow} ended")
        yield record
        if self.rng.random() < 0.03:
            yield record  # delivered twice

    def span(
        self,
        name: str,
        trace_id: str,
        parent: str | None,
        start: int,
        end: int,
        attributes: dict[str, Any],
        service: str,
        *,
        error: bool,
    ) -> dict[str, Any]:
        return {
            "signal": "span",
            "name": name,
            "trace_id": trace_id,
            "span_id": self.next_id(16),
            "parent_span_id": parent,
            "kind": "INTERNAL",
            "start_time_unix_nano": start,
            "end_time_unix_nano": end,
            "duration_ms": (end - start) / 1e6,
            "status": {"code": "ERROR" if error else "UNSET", "description": None},
            "attributes": attributes,
            "events": [],
            "resource": resource_attributes(service),
            "scope": "bench",
        }

    def log(
        self,
        trace_id: str,
        span_id: str,
        time_ns: int,
        attributes: dict[str, Any],
        service: str,
        body: str,
    ) -> dict[str, Any]:
        return {
            "signal": "log",
            "event_name": "runctx.outcome",
            "body": body,
            "severity_text": "INFO",
            "severity_number": 9,
            "time_unix_nano": time_ns,
            "observed_time_unix_nano": time_ns,
            "trace_id": trace_id,
            "span_id": span_id,
            "attributes": attributes,
            "resource": resource_attributes(service),
            "scope": "otel_runctx",
        }


def resource_attributes(service: str) -> dict[str, Any]:
    return {
        "service.name": service,
        "telemetry.sdk.language": "python",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.45.1",
    }


def generate(
    records: int, *, seed: int = 7, customers: int = 100, spans_per_run: int = 100
) -> tuple[list[dict[str, Any]], Books]:
    """About ``records`` records (whole events only) and the books that say what they add up to."""
    generator = _Generator(seed, customers, spans_per_run)
    out: list[dict[str, Any]] = []
    for record in generator.events():
        out.append(record)
        if len(out) >= records and _at_event_end(out):
            break
    outside = generator.span("health check", "f" * 32, None, _BASE_NS, _BASE_NS + 1000, {},
                             "api", error=False)  # fmt: skip
    out.append(outside)
    generator.books.records = len(out)
    return out, generator.books


def _at_event_end(records: list[dict[str, Any]]) -> bool:
    last = records[-1]
    attributes = last["attributes"]
    return (
        last["signal"] == "log"
        and attributes.get("runctx.workflow") == "triage"
        and attributes.get("runctx.outcome.status") == "success"
    )


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as runctx_jsonl lines; returns bytes written."""
    size = 0
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            line = json.dumps(record, separators=(",", ":")) + "\n"
            size += len(line)
            handle.write(line)
    return size


def write_records(path: str | Path, records: int, *, seed: int = 7) -> Books:
    """Generate and write ``records`` records in batches (for the benchmark's big files)."""
    generator = _Generator(seed, 100, 100)
    written = 0
    with open(path, "w", encoding="utf-8") as handle:
        batch: list[str] = []
        for record in generator.events():
            batch.append(json.dumps(record, separators=(",", ":")))
            written += 1
            if len(batch) >= 10_000:
                handle.write("\n".join(batch) + "\n")
                batch.clear()
            if written >= records and _at_event_end([record]):
                break
        if batch:
            handle.write("\n".join(batch) + "\n")
    generator.books.records = written
    return generator.books
