"""Remembering inbound runs that were already accepted, so a repeated header costs one lookup.

A service that calls another one several times within one run sends the same run entries (and
the same signature) on every call. Validating the fields, rebuilding the RunContext and, in
``verify`` mode, recomputing the HMAC gave the same answer each time: here the accepted run is
kept, keyed by the exact decoded ``runctx.*`` entries (signature included), for the settings
object it was accepted under and for :data:`MAX_AGE_SECONDS` at most, and in ``verify`` mode
never past the moment its signature expires (issued-at plus ``OTEL_RUNCTX_SIGNATURE_MAX_AGE``,
the very test :func:`signing.verify` applies), so a replayed header is refused on time whether
or not its run was cached. Only acceptances are kept: a rejected header goes through
:func:`policy.inbound_run` every time, so it is counted and logged every time. The cache is
bounded (least recently used first out).

Every copy of one run shares its cancellation state anyway, so handing two requests of the
same inbound run the same RunContext object changes nothing they can observe.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from otel_runctx import stats
from otel_runctx.context import RunContext
from otel_runctx.propagation.codec import ParsedBaggage
from otel_runctx.propagation.policy import inbound_run
from otel_runctx.propagation.signing import SIGNATURE_KEY, issued_at
from otel_runctx.settings import Settings

__all__ = ["CACHE_SIZE", "MAX_AGE_SECONDS", "cached_inbound_run", "clear"]

#: Distinct accepted inbound runs kept.
CACHE_SIZE = 256
#: How long an acceptance is reused before the entries are checked again.
MAX_AGE_SECONDS = 5.0

_lock = threading.Lock()
# entries -> (settings, run, accepted at (monotonic), signature valid until (unix seconds))
_Entry = tuple[Settings, RunContext, float, float]
_accepted: OrderedDict[frozenset[tuple[str, str]], _Entry] = OrderedDict()


def cached_inbound_run(parsed: ParsedBaggage, settings: Settings) -> RunContext | None:
    """:func:`policy.inbound_run`, answered from the cache when the same entries were accepted
    under the same settings less than :data:`MAX_AGE_SECONDS` ago and their signature (in
    ``verify`` mode) has not expired since."""
    if parsed.run_malformed or not parsed.run_entries or settings.inbound == "ignore":
        return inbound_run(parsed, settings)
    try:
        key = frozenset(parsed.run_entries.items())
    except TypeError:  # not hashable: not something this module wrote
        return inbound_run(parsed, settings)
    now = time.monotonic()
    with _lock:
        hit = _accepted.get(key)
        if (
            hit is not None
            and hit[0] is settings
            and now - hit[2] < MAX_AGE_SECONDS
            and time.time() <= hit[3]
        ):
            _accepted.move_to_end(key)
            run = hit[1]
        else:
            run = None
    if run is not None:
        stats.count("propagation.accepted")
        return run
    run = inbound_run(parsed, settings)
    if run is not None:
        entry = (settings, run, now, _valid_until(parsed, settings))
        with _lock:
            _accepted[key] = entry
            _accepted.move_to_end(key)
            while len(_accepted) > CACHE_SIZE:
                _accepted.popitem(last=False)
    return run


def _valid_until(parsed: ParsedBaggage, settings: Settings) -> float:
    """The last unix second at which :func:`signing.verify` still accepts the run's signature
    (verify passed, so it is well formed); unbounded when the policy checks no signature."""
    if settings.inbound != "verify":
        return math.inf
    issued = issued_at(parsed.run_entries.get(SIGNATURE_KEY))
    return -math.inf if issued is None else float(issued + settings.signature_max_age)


def clear() -> None:
    """Forget every accepted run (tests; key rotation is handled by the settings identity)."""
    with _lock:
        _accepted.clear()
