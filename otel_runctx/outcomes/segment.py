"""One journal segment: a file whose space is reserved before it is mapped, or written plainly.

Mapped (the fast path): ``posix_fallocate`` reserved every block, so the file system can never
fail a store into the mapping later; the copy makes no system call and keeps the GIL. Plain (the
fallback when space could not be reserved): each append is a ``pwrite`` at the end of the data,
which fails with ``OSError`` (``ENOSPC``, ``EDQUOT``, ``EFBIG``) instead of a signal.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from pathlib import Path

__all__ = ["Segment", "create_segment"]

# Linux's MADV_POPULATE_WRITE (5.14+); Python exposes the constant only from 3.13.
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


class Segment:
    """Lines are written at ``size``; ``capacity`` is where the journal rolls to a new one."""

    __slots__ = ("capacity", "fd", "map", "size")

    def __init__(self, capacity: int, mapping: mmap.mmap | None, fd: int) -> None:
        self.capacity = capacity
        self.map = mapping
        self.fd = fd
        self.size = 0

    def write(self, lines: bytes) -> None:
        end = self.size + len(lines)
        if self.map is not None:
            self.map[self.size : end] = lines
        else:
            view, at = memoryview(lines), self.size
            try:
                while view:  # a short write on a filling disk: go on until ENOSPC raises
                    written = os.pwrite(self.fd, view, at)
                    view, at = view[written:], at + written
            except OSError:
                # Cut off what part of the line got in, so the next line starts clean.
                with contextlib.suppress(OSError):
                    os.ftruncate(self.fd, self.size)
                raise
        self.size = end

    def read(self, offset: int, end: int) -> bytes:
        if self.map is not None:
            return bytes(self.map[offset:end])
        return os.pread(self.fd, end - offset, offset)

    def close(self) -> None:
        if self.map is not None:
            with contextlib.suppress(Exception):
                self.map.close()
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def abandon(self) -> None:
        """In a forked child: let go of the handles without touching the parent's data."""
        self.close()


def create_segment(path: Path, capacity: int) -> Segment:
    """Create ``path`` and reserve ``capacity`` bytes for it; mapped when that worked."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.posix_fallocate(fd, 0, capacity)
    except OSError:
        # No space to reserve (or no support for it): never map a file whose blocks may be
        # missing. Give back what was reserved and write this segment plainly.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        return Segment(capacity, None, fd)
    try:
        mapping = mmap.mmap(fd, capacity)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    os.close(fd)  # the mapping keeps the file open
    # Fault every page in now, so appends do not take a page fault each time they cross into a
    # new page. The blocks are already allocated, so a failure here is only slower, not unsafe.
    with contextlib.suppress(OSError, ValueError):
        mapping.madvise(_MADV_POPULATE_WRITE)
    return Segment(capacity, mapping, -1)
