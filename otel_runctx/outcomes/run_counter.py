"""``runctx.runs``: runs that ended, counted here and reported through an observable counter.

A synchronous SDK ``Counter.add`` costs about as much as the rest of a run's outcome together
(the SDK copies and sorts the attributes into a hashable key, builds a ``Measurement``, asks the
exemplar filter, and aggregates, on the caller's thread at the end of every run): measured with
callgrind, the two outcome instruments took ~190k of ~670k instructions per run under an SDK
``MeterProvider``. Adding 1 to an entry of a dict costs a few hundred. The SDK reads the totals
when it collects, through the public observable-counter callback, and exports the same data as
a ``Counter`` would: a monotonic cumulative Sum per attribute set (delta temporality is
computed by the SDK from the cumulative observations; a series with no new runs then reports a
0 where a ``Counter`` leaves it out of the interval). What is lost: exemplars on this counter
(the duration histogram, recorded synchronously, keeps them).

The attribute sets are the ones the caller admitted under its series cap, so the dict is bounded
by that cap. A forked child starts from zero: it counts its own runs, not its parent's.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.util.types import AttributeValue

__all__ = ["SummedCounter"]

_Key = frozenset[tuple[str, AttributeValue]]

#: How many attribute mappings keep their key (the admitted sets: bounded by the series cap).
_MAX_REMEMBERED_KEYS = 4096


class SummedCounter:
    """A monotonic counter with ``Counter.add``'s signature, summed in this process and
    reported by an observable counter named ``name`` on ``meter``."""

    def __init__(self, meter: Meter, name: str, *, unit: str = "", description: str = "") -> None:
        self._lock = threading.Lock()
        self._totals: dict[_Key, tuple[dict[str, AttributeValue], int]] = {}
        self._keys: dict[int, tuple[Mapping[str, AttributeValue], _Key]] = {}
        meter.create_observable_counter(
            name, callbacks=[self._observe], unit=unit, description=description
        )
        if hasattr(os, "register_at_fork"):
            reset = weakref.WeakMethod(self._after_fork_in_child)

            def after_fork_in_child() -> None:
                method = reset()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=after_fork_in_child)

    def add(self, amount: int, attributes: Mapping[str, AttributeValue]) -> None:
        """Add ``amount`` (not negative) to the series of ``attributes`` (hashable values).

        A mapping given again must not have changed since: its key is remembered per object
        (the caller passes the same admitted dimension dict for every run of a series), since
        building a frozenset of the items and comparing it with the stored one cost more than
        the rest of the call."""
        remembered = self._keys.get(id(attributes))
        if remembered is not None and remembered[0] is attributes:
            key = remembered[1]
        else:
            key = frozenset(attributes.items())
            if len(self._keys) >= _MAX_REMEMBERED_KEYS:
                self._keys.clear()
            # The mapping is kept with its key, so its id cannot be reused while remembered.
            self._keys[id(attributes)] = (attributes, key)
        with self._lock:
            entry = self._totals.get(key)
            if entry is None:
                self._totals[key] = (dict(attributes), amount)
            else:
                self._totals[key] = (entry[0], entry[1] + amount)

    def _observe(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            entries = list(self._totals.values())
        return [Observation(total, attributes) for attributes, total in entries]

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent thread may have held it at the fork
        self._totals = {}
        self._keys = {}
