"""``@workflow``: run a function, method, coroutine or generator as a run.

The decorator lives here; ``extractors`` binds its field extractors to the decorated function's
signature and ``generators`` runs generator bodies inside their run. Builds on ``runs``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

import wrapt

from otel_runctx.decorators.extractors import FieldSource, extractor_for
from otel_runctx.decorators.generators import RunAsyncGenerator, RunGenerator
from otel_runctx.run_state.budget import Budget
from otel_runctx.runs import RunScope

__all__ = ["workflow"]

F = TypeVar("F", bound=Callable[..., Any])


def workflow(
    name: str,
    *,
    event_id: FieldSource = None,
    customer_id: FieldSource = None,
    tenant_id: FieldSource = None,
    deadline_seconds: float | None = None,
    budget: Budget | None = None,
) -> Callable[[F], F]:
    """Decorate a function so every call is one run of workflow ``name``.

    Works on plain functions, coroutine functions, generator and async-generator functions,
    methods, classmethods and staticmethods. ``event_id``, ``customer_id`` and ``tenant_id`` may
    be strings or callables; a callable receives exactly the decorated function's arguments,
    bound to its signature with defaults filled in (``self`` / ``cls`` included for methods),
    and returns the value, e.g. ``event_id=lambda self, ticket: ticket.id``. An extractor that
    cannot accept them is a ``TypeError`` at decoration time (see :mod:`.extractors`).

    A generator's run is active only while the generator body runs, never in the consumer
    between items; it ends when the generator finishes, or ``canceled`` when its consumer
    closes it early. Inside :func:`otel_runctx.runs.as_retry_of` a call is the next attempt.
    ``budget`` applies to every call's run (see :func:`otel_runctx.run`).
    """

    def decorate(function: F) -> F:
        target = (
            function.__func__ if isinstance(function, (classmethod, staticmethod)) else function
        )
        bound_self = not isinstance(function, staticmethod)
        extractors = {
            field: extractor_for(target, field, source)
            for field, source in (
                ("event_id", event_id),
                ("customer_id", customer_id),
                ("tenant_id", tenant_id),
            )
        }

        def scope_for(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunScope:
            if bound_self and instance is not None:
                args = (instance, *args)
            return RunScope(
                name,
                event_id=_resolve(extractors["event_id"], args, kwargs),
                customer_id=_resolve(extractors["customer_id"], args, kwargs),
                tenant_id=_resolve(extractors["tenant_id"], args, kwargs),
                deadline_seconds=deadline_seconds,
                budget=budget,
            )

        if inspect.isasyncgenfunction(target):

            @wrapt.decorator
            def async_generator_wrapper(
                wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                return RunAsyncGenerator(
                    wrapped(*args, **kwargs), scope_for(instance, args, kwargs)
                )

            return cast(F, async_generator_wrapper(function))

        if inspect.iscoroutinefunction(target):

            @wrapt.decorator
            async def coroutine_wrapper(
                wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                async with scope_for(instance, args, kwargs):
                    return await wrapped(*args, **kwargs)

            return cast(F, coroutine_wrapper(function))

        if inspect.isgeneratorfunction(target):

            @wrapt.decorator
            def generator_wrapper(
                wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                return RunGenerator(wrapped(*args, **kwargs), scope_for(instance, args, kwargs))

            return cast(F, generator_wrapper(function))

        @wrapt.decorator
        def function_wrapper(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with scope_for(instance, args, kwargs):
                return wrapped(*args, **kwargs)

        return cast(F, function_wrapper(function))

    return decorate


def _resolve(source: FieldSource, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if callable(source):
        value: str | None = source(*args, **kwargs)
        return value
    return source
