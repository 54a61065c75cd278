"""tenacity retries as runs: ``pip install 'otel-runctx[tenacity]'``.

``otel_runctx.integrations.tenacity.retry`` takes exactly tenacity's ``retry`` arguments. Put it
above ``@workflow`` (or around a function that starts a ``run()``)::

    @retry(stop=stop_after_attempt(3))
    @workflow("charge", event_id=lambda order: order.id, customer_id=lambda order: order.customer)
    def charge(order): ...

The first attempt is an ordinary run; each later attempt is the next attempt of the one before
(``attempt`` + 1, ``retry_of_run_id`` = the previous attempt's run, same event, customer and
``root_run_id``). Every attempt has its own root span and exactly one outcome, so the last
attempt's outcome tells how the event ended. With plain tenacity the attempts would be three
unrelated first attempts.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import Any

import tenacity

from otel_runctx.runs import RetryChain, as_retry_of

__all__ = ["retry"]

#: The chain of the call in progress; the attempt wrapper reads it (tenacity calls it for us).
_chain: contextvars.ContextVar[RetryChain | None] = contextvars.ContextVar(
    "otel_runctx_tenacity_chain", default=None
)


def retry(*dargs: Any, **dkw: Any) -> Any:
    """``tenacity.retry`` whose attempts are retry runs of the first; same arguments."""
    if len(dargs) == 1 and callable(dargs[0]) and not dkw:  # bare ``@retry``
        return retry()(dargs[0])

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        retried = tenacity.retry(*dargs, **dkw)(_attempt_wrapper(function))
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_call(*args: Any, **kwargs: Any) -> Any:
                token = _chain.set(RetryChain())
                try:
                    return await retried(*args, **kwargs)
                finally:
                    _chain.reset(token)

            return _expose(async_call, retried)

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            token = _chain.set(RetryChain())
            try:
                return retried(*args, **kwargs)
            finally:
                _chain.reset(token)

        return _expose(call, retried)

    return decorate


def _attempt_wrapper(function: Callable[..., Any]) -> Callable[..., Any]:
    """One attempt: the first run it starts retries the chain's last run."""
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def async_attempt(*args: Any, **kwargs: Any) -> Any:
            with as_retry_of(_chain.get()):
                return await function(*args, **kwargs)

        return async_attempt

    @functools.wraps(function)
    def attempt(*args: Any, **kwargs: Any) -> Any:
        with as_retry_of(_chain.get()):
            return function(*args, **kwargs)

    return attempt


def _expose(call: Callable[..., Any], retried: Any) -> Callable[..., Any]:
    """Keep tenacity's ``.retry`` (the Retrying) and ``.retry_with`` reachable."""
    for name in ("retry", "retry_with"):
        if hasattr(retried, name):
            setattr(call, name, getattr(retried, name))
    return call
