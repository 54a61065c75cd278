"""Which run a span or log record belongs to: the context's RunContext, else ``runctx.*`` baggage.

An upstream service that uses the stock W3C baggage propagator sends the run as ``runctx.*``
baggage entries, and no RunContext is set here. Those entries are untrusted input: they are
validated by :meth:`RunContext.from_baggage` (invalid -> not stamped, counted and logged), and the
rebuilt run is cached per distinct baggage content in a small LRU, so the spans of one inbound
request pay for the rebuild once. The cache is the only state, and it is bounded.

Baggage is only read under ``OTEL_RUNCTX_INBOUND=trust``: unsigned stock baggage cannot satisfy
``verify``, and ``ignore`` means inbound runs are not used at all.
"""

from __future__ import annotations

import functools

from opentelemetry import baggage
from opentelemetry.context import Context, get_current

from otel_runctx import keys
from otel_runctx.context import _RUN_CONTEXT_KEY, RunContext
from otel_runctx.settings import get_settings
from otel_runctx.stats import report_error

__all__ = ["BAGGAGE_CACHE_SIZE", "baggage_cache_size", "clear_baggage_cache", "run_for"]

#: How many distinct inbound baggage mappings keep their rebuilt RunContext.
BAGGAGE_CACHE_SIZE = 128


def run_for(context: Context | None) -> RunContext | None:
    """The run for a span or record started in ``context``.

    Looks in ``context`` (a RunContext, else ``runctx.*`` baggage), then, if ``context`` was given
    and holds neither, in the current context: work started with an explicit context (a remote
    parent, a fresh root) inside a run still belongs to that run.
    """
    if context is None:
        return _run_in(get_current())
    return _run_in(context) or _run_in(get_current())


def _run_in(context: Context) -> RunContext | None:
    run = context.get(_RUN_CONTEXT_KEY)
    if isinstance(run, RunContext):
        return run
    entries = baggage.get_all(context)
    if keys.RUN_ID not in entries or get_settings().inbound != "trust":
        return None
    try:
        key = frozenset(entries.items())
    except TypeError:  # a value set in code that is not hashable: rebuild without the cache
        return _rebuild(tuple((k, v) for k, v in entries.items() if isinstance(v, str)))
    return _cached_rebuild(key)


def _rebuild(
    items: frozenset[tuple[str, object]] | tuple[tuple[str, object], ...],
) -> RunContext | None:
    mapping = {k: v for k, v in items if k.startswith(keys.PREFIX) and isinstance(v, str)}
    run = RunContext.from_baggage(mapping)
    if run is None:
        report_error(
            "stamping.baggage",
            message="inbound runctx.* baggage is missing a field or has an invalid value; "
            "spans and logs are not stamped from it",
        )
    return run


_cached_rebuild = functools.lru_cache(maxsize=BAGGAGE_CACHE_SIZE)(_rebuild)


def baggage_cache_size() -> int:
    """How many rebuilt runs the baggage cache holds now (never more than BAGGAGE_CACHE_SIZE)."""
    return _cached_rebuild.cache_info().currsize


def clear_baggage_cache() -> None:
    """Forget every rebuilt run (tests; after changing settings that affect rebuilding)."""
    _cached_rebuild.cache_clear()
