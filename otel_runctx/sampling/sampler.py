"""RunConsistentSampler: keep or drop whole runs, decided from the run's ``root_run_id`` alone.

Every process computes the same decision for the same run with no coordination: the decision is
``blake2b(root_run_id, digest_size=8)`` read as a big-endian unsigned integer, kept when it is
below ``probability * 2**64``. So a run's spans are all kept or all dropped in every service,
queue worker and retry of the same root, including spans that start new traces.

A dropped run's spans are ``RECORD_ONLY``, not ``DROP``: processors still see them (the usage
roll-up counts their tokens, so cost on the outcome stays exact) but no exporter sends them. A
``DROP``ped span is a NonRecordingSpan that no processor ever sees. Spans outside any run are
sampled like ``ParentBased(TraceIdRatioBased(probability))``.
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
    """Keeps a ``probability`` share of runs, whole; records (without exporting) the rest."""

    def __init__(self, probability: float) -> None:
        if isinstance(probability, bool) or not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"probability must be between 0 and 1, got {probability!r}")
        self.probability = float(probability)
        self._bound = int(self.probability * _SCALE)
        self._outside = ParentBased(TraceIdRatioBased(self.probability))
        self._decisions: dict[str, bool] = {}
        self._keep = SamplingResult(Decision.RECORD_AND_SAMPLE)
        self._record = SamplingResult(Decision.RECORD_ONLY)

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
        if parent_state:
            return SamplingResult(
                Decision.RECORD_AND_SAMPLE if kept else Decision.RECORD_ONLY, None, parent_state
            )
        return self._keep if kept else self._record

    def get_description(self) -> str:
        return f"RunConsistentSampler{{{self.probability}}}"


def runctx_ratio_sampler(argument: str | None = None) -> RunConsistentSampler:
    """Entry point ``runctx_ratio``: the SDK passes ``OTEL_TRACES_SAMPLER_ARG`` as a string.

    A missing argument means 1.0 (keep every run), as for the SDK's own ratio samplers; a bad
    one is a ValueError, which the SDK reports once at startup before falling back to its
    default sampler.
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
