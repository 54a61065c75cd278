"""Sampling: the run-consistent sampler (``OTEL_TRACES_SAMPLER=runctx_ratio``) and what any
sampler means for the completeness of a run's usage. Imports only the run model and processors'
run lookup; outcomes and doctor read coverage from here."""

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
