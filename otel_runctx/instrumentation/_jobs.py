"""A job that runs in its own copy of the submitter's context, and a clean way to submit it."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["ContextJob", "call_in_empty_context"]

R = TypeVar("R")


class ContextJob(Generic[R]):
    """``fn`` bound to a fresh ``contextvars`` copy taken when the job was submitted.

    Each job gets its own copy: one ``contextvars.Context`` must never be entered by two threads
    at once (``Context.run`` raises ``RuntimeError``), and a job that sets a variable without
    resetting it changes only its own copy, never the worker thread it ran on.
    """

    __slots__ = ("context", "fn")

    def __init__(self, fn: Callable[..., R]) -> None:
        self.fn = fn
        self.context = contextvars.copy_context()

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        return self.context.run(self.fn, *args, **kwargs)


def call_in_empty_context(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Call ``fn`` in a new, empty context.

    ``ThreadPoolExecutor.submit`` may start a worker thread. With thread instrumentation active
    (ours or opentelemetry-instrumentation-threading), that long-lived worker would otherwise
    capture the context of whichever submitter happened to create it, and keep that run alive
    for its whole life. The jobs carry their own context, so the worker needs none.
    """
    return contextvars.Context().run(fn, *args, **kwargs)
