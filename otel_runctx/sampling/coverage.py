"""What the configured sampler means for a run's usage: kept with what probability, seen whole?

The usage roll-up sees a span only if the sampler recorded it. :class:`RunConsistentSampler`
records every span of a dropped run that may carry LLM tokens (``RECORD_ONLY``) and, by
default, drops only protocol spans, which carry none (it counts them for the run, see
``runctx.usage.sampled_out_spans``); so tokens and cost are complete at any probability, and
``complete`` means that. The SDK's own samplers ``DROP`` what they do not keep, so a run's usage
is complete under them only when they keep everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)

from otel_runctx.sampling.sampler import RunConsistentSampler

__all__ = ["SamplingCoverage", "coverage_of", "provider_sampler"]


@dataclass(frozen=True, slots=True)
class SamplingCoverage:
    """``probability``: the share of runs whose spans are exported (None: unknown).
    ``complete``: True when the roll-up sees every span of a run that may carry tokens,
    whatever the decision.
    ``needs_recording_root``: complete only if the run's own root span was recorded."""

    probability: float | None
    complete: bool
    needs_recording_root: bool = False

    def usage_complete(self, root_recording: bool) -> bool:
        return self.complete and (root_recording or not self.needs_recording_root)


_UNKNOWN = SamplingCoverage(None, False)


def provider_sampler() -> Sampler | None:
    """The sampler of the global SDK TracerProvider (None without one)."""
    sampler = getattr(trace.get_tracer_provider(), "sampler", None)
    return sampler if isinstance(sampler, Sampler) else None


def coverage_of(sampler: Sampler | None) -> SamplingCoverage:
    """How ``sampler`` treats the spans of a run (see :class:`SamplingCoverage`)."""
    if sampler is None:
        return _UNKNOWN
    if isinstance(sampler, RunConsistentSampler):
        return SamplingCoverage(sampler.probability, True)
    if sampler is ALWAYS_ON:
        return SamplingCoverage(1.0, True)
    if sampler is ALWAYS_OFF:
        return SamplingCoverage(0.0, False)
    if isinstance(sampler, TraceIdRatioBased):
        return SamplingCoverage(sampler.rate, sampler.rate >= 1.0)
    if isinstance(sampler, ParentBased):
        root = coverage_of(getattr(sampler, "_root", None))
        # ParentBased follows an unsampled remote parent (DROP), so it is complete only when
        # the root span of the run here was recorded and the root sampler keeps everything.
        return SamplingCoverage(root.probability, root.complete, needs_recording_root=True)
    return _UNKNOWN
