"""Sampling: the run-consistent sampler (``OTEL_TRACES_SAMPLER=runctx_ratio``), which spans of a
dropped run may carry LLM usage (llm_spans.py), and what any sampler means for the completeness
of a run's usage. Imports the run model, the processors' run lookup, settings and the usage
roll-up's counters (a dropped span is counted for its run); outcomes and doctor read coverage
from here."""

from otel_runctx.sampling.coverage import SamplingCoverage, coverage_of, provider_sampler
from otel_runctx.sampling.sampler import RunConsistentSampler, run_is_kept, runctx_ratio_sampler

__all__ = [
    "RunConsistentSampler",
    "SamplingCoverage",
    "coverage_of",
    "provider_sampler",
    "run_is_kept",
    "runctx_ratio_sampler",
]
