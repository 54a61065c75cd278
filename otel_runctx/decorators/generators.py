"""Generators as runs: a ``@workflow`` generator's run is active only while its own code runs.

``RunGenerator`` and ``RunAsyncGenerator`` drive the wrapped generator step by step, attaching the
run for each step and detaching it before the item reaches the consumer. A consumer that closes the
generator early ends its run ``canceled`` with reason ``closed by consumer``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Generator
from types import AsyncGeneratorType, GeneratorType
from typing import Any

from opentelemetry import context as otel_context

from otel_runctx.runs import RunScope

__all__ = ["CLOSED_BY_CONSUMER", "RunAsyncGenerator", "RunGenerator"]


def _closed_by_consumer(scope: RunScope) -> None:
    """A generator's consumer stopped early: its run ends ``canceled``, not ``success``."""
    if scope.run is not None:
        scope.run.request_cancellation(CLOSED_BY_CONSUMER)


#: The outcome reason of a ``@workflow`` generator closed before it finished.
CLOSED_BY_CONSUMER = "closed by consumer"


class RunGenerator(Generator[Any, Any, Any]):
    """Drives a generator inside its run, and only while the generator's own code runs.

    A plain generator holding ``with run(...)`` would leave its run active in the consumer
    between items; here the run is attached for each step and detached before the item is
    handed over.
    """

    def __init__(self, generator: GeneratorType[Any, Any, Any], scope: RunScope) -> None:
        self._generator = generator
        self._scope = scope
        self._context: otel_context.Context | None = None
        self._done = False

    def send(self, value: Any) -> Any:
        return self._step(self._generator.send, value)

    def throw(self, *args: Any) -> Any:
        return self._step(self._generator.throw, *args)

    def close(self) -> None:
        if self._done or self._context is None:
            self._done = True
            self._generator.close()
            return
        _closed_by_consumer(self._scope)
        self._step(lambda: self._generator.close())

    def _step(self, action: Callable[..., Any], *args: Any) -> Any:
        if self._done:
            return action(*args)
        if self._context is None:
            self._context = self._scope.open()
        token = otel_context.attach(self._context)
        try:
            result = action(*args)
        except StopIteration:
            self._finish(None)
            raise
        except BaseException as error:
            self._finish(None if isinstance(error, GeneratorExit) else error)
            raise
        else:
            if self._generator.gi_frame is None:  # close() returned normally
                self._finish(None)
            return result
        finally:
            otel_context.detach(token)

    def _finish(self, error: BaseException | None) -> None:
        self._done = True
        self._scope.close(error)

    def __del__(self) -> None:
        if not self._done and self._context is not None:
            with contextlib.suppress(Exception):  # a finalizer must never raise
                self.close()


class RunAsyncGenerator(AsyncGenerator[Any, Any]):
    """The async-generator twin of :class:`RunGenerator`."""

    def __init__(self, generator: AsyncGeneratorType[Any, Any], scope: RunScope) -> None:
        self._generator = generator
        self._scope = scope
        self._context: otel_context.Context | None = None
        self._done = False

    async def asend(self, value: Any) -> Any:
        return await self._step(self._generator.asend, value)

    async def athrow(self, *args: Any) -> Any:
        return await self._step(self._generator.athrow, *args)

    async def aclose(self) -> None:
        if self._done or self._context is None:
            self._done = True
            await self._generator.aclose()
            return
        _closed_by_consumer(self._scope)
        await self._step(self._generator.aclose)

    async def _step(self, action: Callable[..., Any], *args: Any) -> Any:
        if self._done:
            return await action(*args)
        if self._context is None:
            self._context = self._scope.open()
        token = otel_context.attach(self._context)
        try:
            result = await action(*args)
        except StopAsyncIteration:
            self._finish(None)
            raise
        except BaseException as error:
            self._finish(None if isinstance(error, GeneratorExit) else error)
            raise
        else:
            if self._generator.ag_frame is None:  # aclose() returned normally
                self._finish(None)
            return result
        finally:
            otel_context.detach(token)

    def _finish(self, error: BaseException | None) -> None:
        self._done = True
        self._scope.close(error)
