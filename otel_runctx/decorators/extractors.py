"""Binding ``@workflow`` field extractors to the decorated function's signature.

An extractor (``event_id=lambda self, ticket: ticket.id``) receives exactly the decorated
function's parameters, whatever way the caller passed them: the call is bound to the
function's signature, defaults are filled in, and the extractor is called positionally when it
can take the parameters that way, else by name (``lambda **kw: kw["ticket"].id``). Which form
works is decided once, at decoration time, and an extractor that can take neither is a
``TypeError`` there, not on the first call in production.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeAlias

__all__ = ["FieldSource", "extractor_for"]

#: A field given as a value, or as a callable that receives the call's arguments.
FieldSource: TypeAlias = "str | Callable[..., str | None] | None"

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_SENTINEL = object()


def extractor_for(function: Callable[..., Any], field: str, source: FieldSource) -> FieldSource:
    """``source`` unchanged when it is a value; a callable taking the raw call arguments (with
    ``self``/``cls`` first for methods) when it is an extractor. Raises TypeError when the
    extractor cannot accept ``function``'s parameters."""
    if not callable(source):
        return source
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin or C function: pass the call through
        return source
    params = list(signature.parameters.values())
    by_name = _can_take_by_name(params)
    try:
        extractor_signature: inspect.Signature | None = inspect.signature(source)
    except (TypeError, ValueError):
        extractor_signature = None
    if extractor_signature is None or _binds(extractor_signature, params, by_name=False):
        positional = True
    elif by_name and _binds(extractor_signature, params, by_name=True):
        positional = False
    else:
        shown = ", ".join(p.name for p in params) or "no arguments"
        raise TypeError(
            f"{field}= extractor {_describe(source)}{extractor_signature} cannot accept the "
            f"arguments of {getattr(function, '__qualname__', function)}{signature}: it is "
            f"called with exactly those ({shown}, self/cls included for methods), e.g. "
            f"lambda {', '.join(p.name for p in params if p.kind in _POSITIONAL)}: ..."
        )
    extract = source

    def bound_extractor(*args: Any, **kwargs: Any) -> str | None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if positional:
            return extract(*bound.args, **bound.kwargs)
        named_args, named_kwargs = _by_name(params, bound)
        return extract(*named_args, **named_kwargs)

    return bound_extractor


def _can_take_by_name(params: list[inspect.Parameter]) -> bool:
    """Passing by name only works when no ``*args`` follows a parameter that can be named."""
    return not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)


def _binds(extractor: inspect.Signature, params: list[inspect.Parameter], *, by_name: bool) -> bool:
    args: list[object] = []
    kwargs: dict[str, object] = {}
    for param in params:
        if param.kind is inspect.Parameter.POSITIONAL_ONLY or (
            param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and not by_name
        ):
            args.append(_SENTINEL)
        elif param.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            kwargs[param.name] = _SENTINEL
    try:
        extractor.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _by_name(
    params: list[inspect.Parameter], bound: inspect.BoundArguments
) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in params:
        value = bound.arguments[param.name]
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            args.append(value)
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            kwargs.update(value)
        else:
            kwargs[param.name] = value
    return args, kwargs


def _describe(source: Callable[..., Any]) -> str:
    name = getattr(source, "__qualname__", None) or repr(source)
    return "lambda" if name.endswith("<lambda>") else name
