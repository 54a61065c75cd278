"""The usage roll-up: per run, how many spans, errors and LLM tokens (and what they cost).

:class:`UsageRollupProcessor` reads each ended span (``on_end``; read-only there) and adds
it to the aggregate of the run named by its ``runctx.run_id`` attribute. Only runs this process
started with ``run()``/``@workflow`` are aggregated: :func:`start_run` opens an aggregate when the
run starts and :func:`finish_run` pops it when the run ends, so memory holds one small aggregate
per live run and nothing after. The run's own root span ends after the aggregate is popped; the
run end counts it in by hand. Spans that end after their run ended are not counted.

Each run is aggregated on its own: a child run's spans count for the child, not for the parent,
so summing ``runctx.usage.*`` over outcome events never counts a span twice.

Tokens are read from every common convention (usage/conventions.py). **No double counting**:
when a framework span (a chain, an agent, a workflow) reports the tokens of the LLM calls below
it, only the innermost spans count. A span's tokens are added unless one of its descendants
(in any run) already reported tokens; the descendant ends first and marks its parent, and the
mark travels up as each marked span ends. The same rule makes two instrumentations of one call
(e.g. openai-v2 and OpenInference wrapping the same client method, one span nested in the
other) count once. A framework span that reports its own tokens *and* has an instrumented LLM
call below it is not counted (the call below is). Works within one process; parents in another
process are never marked. A parent the sampler ``DROP``ped (a protocol span of a dropped run,
e.g. a server span an LLM call runs under) never ends here, so its mark stays until the
MAX_COVERED_SPANS bound evicts it (oldest first).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from opentelemetry.util.types import AttributeValue

from otel_runctx import keys
from otel_runctx.stats import count, report_error
from otel_runctx.usage import spend
from otel_runctx.usage.attributes import usage_attributes
from otel_runctx.usage.conventions import LlmUsage, read_llm_usage
from otel_runctx.usage.prices import PriceTable

__all__ = [
    "RunUsage",
    "UsageRollupProcessor",
    "finish_run",
    "note_sampled_out",
    "snapshot_run",
    "start_run",
]

#: Most runs aggregated at once; beyond this new runs get no roll-up (counted).
MAX_LIVE_RUNS = 100_000
#: Most distinct models tracked per run; more are summed under OTHER_MODEL.
MAX_MODELS_PER_RUN = 32
OTHER_MODEL = "(other)"
UNKNOWN_MODEL = "(unknown)"

#: Most span ids remembered as "a descendant already reported tokens" (see the module docstring).
MAX_COVERED_SPANS = 100_000
#: Per-model token counters, in this order (RunUsage.tokens values).
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_write", "unsplit")


@dataclass(slots=True)
class RunUsage:
    """What one run's spans added up to.

    ``tokens`` maps model -> [input, output, cache_read, cache_write, unsplit] (see
    TOKEN_FIELDS; the first two are what they always were). ``providers`` and
    ``request_models`` remember, per model, the first provider and request model reported.
    ``nested_skipped`` counts spans whose tokens were not added because a span below them
    already reported (the no-double-count rule). ``sampled_out`` counts spans the sampler
    ``DROP``ped in a dropped run (see :func:`note_sampled_out`): they are in ``span_count`` but
    the roll-up never saw them, so their errors are not in ``error_count``.
    """

    span_count: int = 0
    error_count: int = 0
    llm_calls: int = 0
    tokens: dict[str, list[int]] = field(default_factory=dict)
    providers: dict[str, str] = field(default_factory=dict)
    request_models: dict[str, str] = field(default_factory=dict)
    nested_skipped: int = 0
    bad_counts: int = 0
    sampled_out: int = 0

    def copy(self) -> RunUsage:
        return RunUsage(
            self.span_count,
            self.error_count,
            self.llm_calls,
            {model: list(counts) for model, counts in self.tokens.items()},
            dict(self.providers),
            dict(self.request_models),
            self.nested_skipped,
            self.bad_counts,
            self.sampled_out,
        )

    def add_tokens(
        self,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read: int = 0,
        cache_write: int = 0,
        unsplit: int = 0,
    ) -> None:
        counts = self.tokens.get(model)
        if counts is None:
            if len(self.tokens) >= MAX_MODELS_PER_RUN:
                model = OTHER_MODEL
                counts = self.tokens.setdefault(model, [0] * len(TOKEN_FIELDS))
            else:
                counts = self.tokens[model] = [0] * len(TOKEN_FIELDS)
        while len(counts) < len(TOKEN_FIELDS):
            counts.append(0)
        counts[0] += input_tokens
        counts[1] += output_tokens
        counts[2] += cache_read
        counts[3] += cache_write
        counts[4] += unsplit

    def add_call(self, call: LlmUsage) -> None:
        """Add one LLM call's usage (a span that reported tokens)."""
        model = call.model or UNKNOWN_MODEL
        self.llm_calls += 1
        self.bad_counts += call.bad
        self.add_tokens(
            model,
            call.input_tokens,
            call.output_tokens,
            call.cache_read_tokens,
            call.cache_write_tokens,
            call.unsplit_tokens,
        )
        if call.provider and model not in self.providers:
            self.providers[model] = call.provider
        if call.request_model and model not in self.request_models:
            self.request_models[model] = call.request_model

    def to_attributes(
        self, prices: PriceTable | None = None, *, use_catalog: bool = True
    ) -> dict[str, AttributeValue]:
        """The ``runctx.usage.*`` attributes (see usage/attributes.py)."""
        return usage_attributes(self, prices, use_catalog=use_catalog)


_lock = threading.Lock()
_live: dict[str, RunUsage] = {}
# Span ids (of any run) with a descendant that already reported tokens; popped when they end.
_covered: dict[int, bool] = {}
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


def note_sampled_out(run_id: str) -> None:
    """Count a span of the live run ``run_id`` that the sampler ``DROP``ped: no processor will
    see it, so it is counted here, when it starts (RunConsistentSampler calls this)."""
    if run_id not in _live:  # a plain dict read: runs not started here pay no lock
        return
    with _lock:
        usage = _live.get(run_id)
        if usage is not None:
            usage.span_count += 1
            usage.sampled_out += 1


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


def _mark_parent(span: ReadableSpan) -> None:
    parent = span.parent
    if parent is not None and not parent.is_remote:
        _covered[parent.span_id] = True
        if len(_covered) > MAX_COVERED_SPANS:
            with _lock, contextlib.suppress(StopIteration, KeyError, RuntimeError):
                del _covered[next(iter(_covered))]


class UsageRollupProcessor(SpanProcessor):
    """Adds each ended span of a live run to that run's usage aggregate.

    Reads ``runctx.run_id`` (stamped by RunContextSpanProcessor, or set on the run's root span)
    and the token attributes of every convention in usage/conventions.py. Token counts that are
    not non-negative integers are ignored and counted (``usage.bad_token_count``). Spans a
    sampler recorded without sampling (``RECORD_ONLY``, see RunConsistentSampler) count too;
    spans it ``DROP``ped never reach a processor and are counted by the sampler instead
    (:func:`note_sampled_out`).
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
            own = span.context.span_id if span.context is not None else None
            # Popped first, even for spans we do not aggregate (a run's root span ends after
            # its aggregate is gone), so marks never outlive their span.
            covered = bool(_covered) and own is not None and _covered.pop(own, False)
            attributes = span.attributes
            if not attributes:
                if covered:
                    _mark_parent(span)
                return
            run_id = attributes.get(keys.RUN_ID)
            if not isinstance(run_id, str):
                if covered:
                    _mark_parent(span)
                return
            live = run_id in _live
            if not live and not covered:
                return
            call = read_llm_usage(attributes)
            if call is not None or covered:
                # Innermost wins: this span's parent (in any run) must not add tokens again.
                _mark_parent(span)
            if not live:
                return
            failed = span.status.status_code is StatusCode.ERROR
            with _lock:
                usage = _live.get(run_id)
                if usage is None:
                    return
                usage.span_count += 1
                usage.error_count += failed
                if call is not None:
                    if covered:
                        usage.nested_skipped += 1
                    else:
                        usage.add_call(call)
            if call is not None and call.bad:
                count("usage.bad_token_count")
            if call is not None and covered:
                count("usage.nested_tokens_skipped")
            if call is not None and not covered:  # budget hook (otel_runctx.usage.spend)
                model = call.request_model or call.model  # as budgets priced it before
                spend.on_llm_usage(run_id, model, call.input_tokens, call.output_tokens)
        except Exception as error:
            report_error("usage_processor.on_end", error)

    def shutdown(self) -> None:
        """Nothing to release: aggregates are freed as their runs end."""

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Nothing is buffered here."""
        return True
