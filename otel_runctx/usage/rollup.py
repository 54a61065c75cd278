"""The usage roll-up: per run, how many spans, errors and LLM tokens (and what they cost).

:class:`UsageRollupProcessor` reads each ended span (``on_end``; read-only there) and adds
it to the aggregate of the run named by its ``runctx.run_id`` attribute. Only runs this process
started with ``run()``/``@workflow`` are aggregated: :func:`start_run` opens an aggregate when the
run starts and :func:`finish_run` pops it when the run ends, so memory holds one small aggregate
per live run and nothing after. The run's own root span ends after the aggregate is popped; the
run end counts it in by hand. Spans that end after their run ended are not counted.

Each run is aggregated on its own: a child run's spans count for the child, not for the parent,
so summing ``runctx.usage.*`` over outcome events never counts a span twice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from otel_runctx import keys
from otel_runctx.stats import count, report_error
from otel_runctx.usage import spend
from otel_runctx.usage.prices import PriceTable

__all__ = ["RunUsage", "UsageRollupProcessor", "finish_run", "snapshot_run", "start_run"]

#: Most runs aggregated at once; beyond this new runs get no roll-up (counted).
MAX_LIVE_RUNS = 100_000
#: Most distinct models tracked per run; more are summed under OTHER_MODEL.
MAX_MODELS_PER_RUN = 32
OTHER_MODEL = "(other)"
UNKNOWN_MODEL = "(unknown)"

_INPUT_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
_OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
_MODEL_KEYS = ("gen_ai.request.model", "gen_ai.response.model")


@dataclass(slots=True)
class RunUsage:
    """What one run's spans added up to. ``tokens`` maps model -> [input, output]."""

    span_count: int = 0
    error_count: int = 0
    llm_calls: int = 0
    tokens: dict[str, list[int]] = field(default_factory=dict)

    def copy(self) -> RunUsage:
        return RunUsage(
            self.span_count,
            self.error_count,
            self.llm_calls,
            {model: list(pair) for model, pair in self.tokens.items()},
        )

    def add_tokens(self, model: str, input_tokens: int, output_tokens: int) -> None:
        pair = self.tokens.get(model)
        if pair is None:
            if len(self.tokens) >= MAX_MODELS_PER_RUN:
                model = OTHER_MODEL
                pair = self.tokens.setdefault(model, [0, 0])
            else:
                pair = self.tokens[model] = [0, 0]
        pair[0] += input_tokens
        pair[1] += output_tokens

    def to_attributes(self, prices: PriceTable | None = None) -> dict[str, AttributeValue]:
        """The ``runctx.usage.*`` attributes; cost ones only with a price table."""
        models = sorted(self.tokens)
        inputs = [self.tokens[m][0] for m in models]
        outputs = [self.tokens[m][1] for m in models]
        attributes: dict[str, AttributeValue] = {
            "runctx.usage.span_count": self.span_count,
            "runctx.usage.error_count": self.error_count,
            "runctx.usage.llm_calls": self.llm_calls,
            "runctx.usage.input_tokens": sum(inputs),
            "runctx.usage.output_tokens": sum(outputs),
        }
        if models:
            attributes["runctx.usage.models"] = models
            attributes["runctx.usage.input_tokens_by_model"] = inputs
            attributes["runctx.usage.output_tokens_by_model"] = outputs
        if prices is not None:
            costs, unpriced = [], []
            for model, tokens_in, tokens_out in zip(models, inputs, outputs, strict=True):
                price = prices.price_of(model)
                if price is None:
                    costs.append(0.0)
                    if tokens_in or tokens_out:
                        unpriced.append(model)
                else:
                    costs.append(price.cost(tokens_in, tokens_out))
            attributes["runctx.usage.cost"] = sum(costs)
            attributes["runctx.usage.cost_currency"] = prices.currency
            if models:
                attributes["runctx.usage.cost_by_model"] = costs
            if unpriced:
                attributes["runctx.usage.cost_unpriced_models"] = unpriced
        return attributes


_lock = threading.Lock()
_live: dict[str, RunUsage] = {}
_enabled = False


def start_run(run_id: str) -> None:
    """Open the aggregate of a run this process started (no-op without a UsageRollupProcessor)."""
    if not _enabled:
        return
    with _lock:
        if len(_live) >= MAX_LIVE_RUNS:
            count("usage.runs_not_tracked")
            return
        _live.setdefault(run_id, RunUsage())


def snapshot_run(run_id: str) -> RunUsage | None:
    """A copy of the run's aggregate so far, or None if it is not tracked."""
    with _lock:
        usage = _live.get(run_id)
        return usage.copy() if usage is not None else None


def finish_run(run_id: str) -> RunUsage | None:
    """Pop and return the run's aggregate (None if it was not tracked)."""
    with _lock:
        return _live.pop(run_id, None)


def live_run_count() -> int:
    """How many runs are aggregated right now (for tests and doctor)."""
    with _lock:
        return len(_live)


def _as_token_count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _first(attributes: object, names: tuple[str, ...]) -> object:
    get = attributes.get  # type: ignore[attr-defined]
    for name in names:
        value = get(name)
        if value is not None:
            return value
    return None


class UsageRollupProcessor(SpanProcessor):
    """Adds each ended span of a live run to that run's usage aggregate.

    Reads ``runctx.run_id`` (stamped by RunContextSpanProcessor, or set on the run's root span),
    ``gen_ai.usage.input_tokens``/``output_tokens`` (older ``prompt_tokens``/
    ``completion_tokens`` too) and ``gen_ai.request.model``. Token counts that are not
    non-negative integers are ignored and counted (``usage.bad_token_count``).
    """

    def __init__(self) -> None:
        global _enabled
        _enabled = True

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Usage is known when a span ends; at start only a used-up ``enforce="raise"`` budget
        acts: it raises BudgetExceeded (on purpose, the one exception we raise)."""
        spend.check_span_start(parent_context)  # budget hook (otel_runctx.usage.spend)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            attributes = span.attributes
            if not attributes:
                return
            run_id = attributes.get(keys.RUN_ID)
            if not isinstance(run_id, str) or run_id not in _live:
                return
            raw_in = _first(attributes, _INPUT_KEYS)
            raw_out = _first(attributes, _OUTPUT_KEYS)
            is_llm = raw_in is not None or raw_out is not None
            tokens_in = _as_token_count(raw_in) if raw_in is not None else 0
            tokens_out = _as_token_count(raw_out) if raw_out is not None else 0
            if tokens_in is None or tokens_out is None:
                count("usage.bad_token_count")
                tokens_in, tokens_out = tokens_in or 0, tokens_out or 0
            model = _first(attributes, _MODEL_KEYS) if is_llm else None
            failed = span.status.status_code is StatusCode.ERROR
            with _lock:
                usage = _live.get(run_id)
                if usage is None:
                    return
                usage.span_count += 1
                usage.error_count += failed
                if is_llm:
                    usage.llm_calls += 1
                    usage.add_tokens(
                        model if isinstance(model, str) and model else UNKNOWN_MODEL,
                        tokens_in,
                        tokens_out,
                    )
            if is_llm:  # budget hook (otel_runctx.usage.spend)
                spend.on_llm_usage(
                    run_id, model if isinstance(model, str) else None, tokens_in, tokens_out
                )
        except Exception as error:
            report_error("usage_processor.on_end", error)

    def shutdown(self) -> None:
        """Nothing to release: aggregates are freed as their runs end."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True
