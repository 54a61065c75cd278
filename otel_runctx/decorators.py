"""``@workflow``: run a function, method, coroutine or generator as a run."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar, cast

import wrapt

from otel_runctx.budget import Budget
from otel_runctx.runs import RunAsyncGenerator, RunGenerator, RunScope

__all__ = ["workflow"]

F = TypeVar("F", bound=Callable[..., Any])

#: A field given as a value, or as a callable that receives the call's arguments.
FieldSource: TypeAlias = "str | Callable[..., str | None] | None"


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
    be strings or callables; a callable receives the call's own arguments (without ``self`` or
    ``cls``) and returns the value, e.g. ``event_id=lambda ticket: ticket.id``.

    A generator's run is active only while the generator body runs, never in the consumer
    between items; it ends when the generator finishes or is closed. ``budget`` applies to every
    call's run (see :func:`otel_runctx.run`).
    """

    def scope_for(args: tuple[Any, ...], kwargs: dict[str, Any]) -> RunScope:
        return RunScope(
            name,
            event_id=_resolve(event_id, args, kwargs),
            customer_id=_resolve(customer_id, args, kwargs),
            tenant_id=_resolve(tenant_id, args, kwargs),
            deadline_seconds=deadline_seconds,
            budget=budget,
        )

    def decorate(function: F) -> F:
        target = (
            function.__func__ if isinstance(function, (classmethod, staticmethod)) else function
        )

        if inspect.isasyncgenfunction(target):

            @wrapt.decorator
            def async_generator_wrapper(
                wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                return RunAsyncGenerator(wrapped(*args, **kwargs), scope_for(args, kwargs))

            return cast(F, async_generator_wrapper(function))

        if inspect.iscoroutinefunction(target):

            @wrapt.decorator
            async def coroutine_wrapper(
                wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                async with scope_for(args, kwargs):
                    return await wrapped(*args, **kwargs)

            return cast(F, coroutine_wrapper(function))

        if inspect.isgeneratorfunction(target):

            @wrapt.decorator
            def generator_wrapper(
                wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
            ) -> Any:
                return RunGenerator(wrapped(*args, **kwargs), scope_for(args, kwargs))

            return cast(F, generator_wrapper(function))

        @wrapt.decorator
        def function_wrapper(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            with scope_for(args, kwargs):
                return wrapped(*args, **kwargs)

        return cast(F, function_wrapper(function))

    return decorate


def _resolve(source: FieldSource, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if callable(source):
        value: str | None = source(*args, **kwargs)
        return value
    return source
