"""``RunLocal``: one value per run, the way ``threading.local`` keeps one value per thread.

A value set in a run is seen by everything that carries that run (its threads, tasks and pool
jobs, since they find the run through the OpenTelemetry Context) and by nothing else: not other
runs, not the run's child runs (unless ``inherit=True``), not code outside any run.

The values are not kept in the ``RunLocal``: they live in the run's own shared state (the object
every copy of one ``RunContext`` shares), so there is no process-wide table keyed by run to leak
or to lock. When the run's ``run()``/``@workflow`` scope closes the values are dropped at once,
and a ``set()`` arriving after that (a thread still running after its run ended) is dropped too
(counted as ``run_local.set_after_end``). A run that never goes through a scope (one made active
with ``set_run_context``) drops its values when its last ``RunContext`` copy is garbage
collected: nothing here holds a run alive.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

from otel_runctx.context import RunContext, get_run_context, require_run_context
from otel_runctx.stats import count

__all__ = ["RunLocal", "release_run_locals"]

T = TypeVar("T")
D = TypeVar("D")

#: What a run's values become when its scope closes: empty, and refusing new values.
_ENDED: Mapping[object, object] = MappingProxyType({})
_MISSING: Any = object()


class RunLocal(Generic[T]):
    """A per-run slot: ``.set(value)`` in a run, ``.get(default)`` anywhere the run is visible.

    ``inherit=True`` lets child runs read the value of the nearest enclosing run that set one
    (until they set their own; setting in a child never changes the parent's value).
    """

    __slots__ = ("inherit", "name")

    def __init__(self, name: str = "", *, inherit: bool = False) -> None:
        self.name = name
        self.inherit = inherit

    def __repr__(self) -> str:
        return f"RunLocal({self.name!r}, inherit={self.inherit})"

    @overload
    def get(self) -> T | None: ...

    @overload
    def get(self, default: D) -> T | D: ...

    def get(self, default: Any = None) -> Any:
        """The active run's value (or an ancestor's, with ``inherit``); ``default`` if none."""
        run = get_run_context()
        if run is None:
            return default
        state: Any = run._cancellation
        while state is not None:
            values = state.run_locals
            if values is not None:
                value = values.get(self, _MISSING)
                if value is not _MISSING:
                    return value
            if not self.inherit:
                break
            state = state._parent
        return default

    def set(self, value: T) -> None:
        """Set the active run's value. Raises NoRunContextError outside a run."""
        state: Any = require_run_context()._cancellation
        with state._lock:
            values = state.run_locals
            if values is None:
                state.run_locals = {self: value}
                return
            if type(values) is dict:
                values[self] = value
                return
        count("run_local.set_after_end")

    def delete(self) -> None:
        """Remove the active run's value, if it has one (an ancestor's stays visible)."""
        run = get_run_context()
        if run is None:
            return
        state: Any = run._cancellation
        with state._lock:
            values = state.run_locals
            if type(values) is dict:
                values.pop(self, None)


def release_run_locals(run: RunContext) -> None:
    """Drop every RunLocal value of ``run`` and refuse new ones; called when its scope closes."""
    # One attribute store, whether or not the run used RunLocal: cheaper than checking, and a
    # late set() on a run that never set anything is refused too.
    run._cancellation.run_locals = _ENDED
