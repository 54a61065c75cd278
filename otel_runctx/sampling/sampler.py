"""RunConsistentSampler: keep or drop whole runs, decided from the run's ``root_run_id`` alone.

Every process computes the same decision for the same run with no coordination: the decision is
``blake2b(root_run_id, digest_size=8)`` read as a big-endian unsigned integer, kept when it is
below ``probability * 2**64``. So a run's spans are all kept or all dropped in every service,
queue worker and retry of the same root, including spans that start new traces.

No span of a dropped run is exported, but the usage roll-up must still see every span that may
carry LLM tokens, or the outcome's cost would be short. So in a dropped run
(``sampled_out_spans="llm"``, the default, ``OTEL_RUNCTX_SAMPLED_OUT_SPANS``):

- a span that may carry tokens is ``RECORD_ONLY``: built and seen by processors, not exported.
  That is every span recognisable at start as an LLM/GenAI call *and* every span that cannot be
  told apart at start (see sampling/llm_spans.py for the rule and the sources it was checked in);
- a span that starts as a protocol span (HTTP, database, RPC, messaging) is ``DROP``: a
  NonRecordingSpan no processor sees, a fraction of the cost. The sampler counts it for its
  run (``runctx.usage.span_count`` stays right; ``runctx.usage.sampled_out_spans`` says how
  many spans the roll-up did not see, whose errors ``error_count`` therefore misses);
- while some run's ``enforce="raise"`` budget is used up, nothing is dropped, so the span start
  that must raise ``BudgetExceeded`` still reaches the roll-up.

``sampled_out_spans="all"`` records every span of a dropped run (``RECORD_ONLY``), the
behaviour before the distinction. The decision for a span comes from the run in the context it
starts in, not from its parent span, so a child of a dropped span is decided like any other
span of its run. Spans outside any run are sampled like
``ParentBased(TraceIdRatioBased(probability))``. The attributes given at start are passed
through to the span, as the SDK's own samplers do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from otel_runctx.processors._lookup import run_for
from otel_runctx.sampling.llm_spans import may_carry_llm_usage
from otel_runctx.settings import SAMPLED_OUT_SPANS, get_settings
from otel_runctx.stats import report_error
from otel_runctx.usage.rollup import note_sampled_out
from otel_runctx.usage.spend import hard_stop_pending

__all__ = ["RunConsistentSampler", "run_is_kept", "runctx_ratio_sampler"]

_SCALE = 1 << 64
#: Decisions remembered per root run id; the cache is cleared when full (bounded memory).
_CACHE_SIZE = 4096


def _hash64(root_run_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(root_run_id.encode(), digest_size=8).digest(), "big")


def run_is_kept(root_run_id: str, probability: float) -> bool:
    """The decision for a run: the same in every process for the same root run id."""
    if probability >= 1.0:
        return True
    if probability <= 0.0:
        return False
    return _hash64(root_run_id) < int(probability * _SCALE)


class RunConsistentSampler(Sampler):
    """Keeps a ``probability`` share of runs, whole; of the rest records (without exporting)
    what the usage roll-up needs.

    ``sampled_out_spans``: ``"llm"`` records the spans of a dropped run that may carry LLM usage
    and drops the others; ``"all"`` records them all; None (default) reads
    ``OTEL_RUNCTX_SAMPLED_OUT_SPANS`` (default ``llm``). See the module docstring.
    """

    def __init__(self, probability: float, sampled_out_spans: str | None = None) -> None:
        if isinstance(probability, bool) or not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"probability must be between 0 and 1, got {probability!r}")
        if sampled_out_spans is None:
            sampled_out_spans = get_settings().sampled_out_spans
        if sampled_out_spans not in SAMPLED_OUT_SPANS:
            raise ValueError(
                f"sampled_out_spans must be one of {', '.join(SAMPLED_OUT_SPANS)}, "
                f"got {sampled_out_spans!r}"
            )
        self.probability = float(probability)
        self.sampled_out_spans = sampled_out_spans
        self._record_all = sampled_out_spans == "all"
        self._bound = int(self.probability * _SCALE)
        self._outside = ParentBased(TraceIdRatioBased(self.probability))
        self._decisions: dict[str, bool] = {}
        self._keep = SamplingResult(Decision.RECORD_AND_SAMPLE)
        self._record = SamplingResult(Decision.RECORD_ONLY)
        self._drop = SamplingResult(Decision.DROP)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        run = run_for(parent_context)
        if run is None:
            return self._outside.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        root = run.root_run_id
        kept = self._decisions.get(root)
        if kept is None:
            kept = self.probability >= 1.0 or _hash64(root) < self._bound
            if len(self._decisions) >= _CACHE_SIZE:
                self._decisions.clear()
            self._decisions[root] = kept
        parent_state = get_current_span(parent_context).get_span_context().trace_state
        if kept:
            decision = Decision.RECORD_AND_SAMPLE
        elif self._record_all or self._records(run.run_id, attributes):
            decision = Decision.RECORD_ONLY
        else:
            return SamplingResult(Decision.DROP, None, parent_state) if parent_state else self._drop
        if attributes or parent_state:
            return SamplingResult(decision, attributes, parent_state or None)
        return self._keep if kept else self._record

    @staticmethod
    def _records(run_id: str, attributes: Attributes) -> bool:
        """Whether a span of a dropped run is recorded; a dropped one is counted for its run.
        Any failure records the span (never into the caller, never a span the roll-up misses)."""
        try:
            if may_carry_llm_usage(attributes) or hard_stop_pending():
                return True
            note_sampled_out(run_id)
            return False
        except Exception as error:
            report_error("sampler.sampled_out", error)
            return True

    def get_description(self) -> str:
        if self._record_all:
            return f"RunConsistentSampler{{{self.probability},sampled_out_spans=all}}"
        return f"RunConsistentSampler{{{self.probability}}}"


def runctx_ratio_sampler(argument: str | None = None) -> RunConsistentSampler:
    """Entry point ``runctx_ratio``: the SDK passes ``OTEL_TRACES_SAMPLER_ARG`` as a string.

    A missing argument means 1.0 (keep every run), as for the SDK's own ratio samplers; a bad
    one is a ValueError, which the SDK reports once at startup before falling back to its
    default sampler.

    Which spans of a dropped run are recorded comes from ``OTEL_RUNCTX_SAMPLED_OUT_SPANS``.
    """
    if argument is None or not argument.strip():
        return RunConsistentSampler(1.0)
    try:
        probability = float(argument)
    except ValueError:
        raise ValueError(
            f"OTEL_TRACES_SAMPLER_ARG must be a probability between 0 and 1, got {argument!r}"
        ) from None
    return RunConsistentSampler(probability)
