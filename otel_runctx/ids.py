"""Run ids: RFC 9562 UUIDv7, strictly increasing within one process."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

_COUNTER_BITS = 42  # 12 bits of rand_a + the top 30 bits of rand_b (RFC 9562 §6.2, method 1)
_COUNTER_MAX = (1 << _COUNTER_BITS) - 1
#: Random bytes read from the OS at once: one ``os.urandom`` per ~400 ids instead of two per id.
_POOL_BYTES = 4096


class _UUIDv7Generator:
    """UUIDv7 with a 42-bit counter that orders ids minted in the same millisecond.

    The counter restarts from a random value with its top bit clear every new millisecond (so
    there is room to count up); if it overflows, or the clock steps back, the timestamp is
    advanced by hand so ids never go backwards.

    Random bits come from ``os.urandom`` read in blocks: each read is a system call that also
    releases the GIL, and on a busy process the caller then waits for background threads (batch
    exporters, the spool) before it gets the GIL back. A forked child drops the inherited block,
    so parent and child never hand out the same bits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0
        self._pool = b""
        self._used = 0

    def _random_int(self, size: int) -> int:
        """``size`` random bytes from the pool as an int (call with the lock held)."""
        start = self._used
        if start + size > len(self._pool):
            self._pool, start = os.urandom(_POOL_BYTES), 0
        self._used = start + size
        return int.from_bytes(self._pool[start : start + size], "big")

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._used = b"", 0

    def __call__(self) -> str:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = self._random_int(6) >> 7  # 41 random bits
            else:
                self._counter += 1
                if self._counter > _COUNTER_MAX:
                    self._last_ms += 1
                    self._counter = 0
            timestamp, counter = self._last_ms, self._counter
            tail = self._random_int(4)  # 32 random bits
        value = (timestamp & 0xFFFF_FFFF_FFFF) << 80
        value |= 0x7 << 76  # version
        value |= (counter >> 30) << 64  # rand_a: counter's high 12 bits
        value |= 0b10 << 62  # variant
        value |= (counter & 0x3FFF_FFFF) << 32  # counter's low 30 bits
        value |= tail
        return _canonical(value)


def _canonical(value: int) -> str:
    """``str(uuid.UUID(int=value))`` without building the UUID object (a third of the cost)."""
    digits = f"{value:032x}"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def _stdlib_uuid7() -> Callable[[], str] | None:
    # Python 3.14 added uuid.uuid7, which keeps the same per-process ordering guarantee.
    factory = getattr(uuid, "uuid7", None)
    if factory is None:
        return None
    return lambda: str(factory())


_mint: Callable[[], str] = _stdlib_uuid7() or _UUIDv7Generator()
if isinstance(_mint, _UUIDv7Generator) and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_mint._after_fork_in_child)


def generate_run_id() -> str:
    """Return a new run id: a UUIDv7 string that sorts after every id this process made before."""
    return _mint()
