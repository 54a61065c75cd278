"""The spool's intake: a per-process append-only journal the caller writes to.

``emit_outcome`` must not return before its outcome is on disk, and must stay fast. Copying
one line into a shared file mapping costs about a microsecond and survives the process being
killed the moment after (the pages belong to the kernel's page cache); a SQLite commit per
outcome costs tens of microseconds. So callers append here and the spool's worker moves lines
into SQLite in batches. Neither survives a power cut: that would need an fsync per outcome.

Each process owns a lock file ``<owner>.lock`` it holds an exclusive ``flock`` on for its whole
life. The kernel drops that lock when the process dies, however it dies, so another process can
tell a dead owner's journals (safe to take over) from a live one's (hands off) without pids.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IntakeJournal", "owner_is_alive"]

JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"
#: Size of one journal segment (a sparse file; only what is written takes disk space).
SEGMENT_BYTES = 4 * 1024 * 1024
# Linux's MADV_POPULATE_WRITE (5.14+); Python exposes the constant only from 3.13.
_MADV_POPULATE_WRITE = getattr(mmap, "MADV_POPULATE_WRITE", 23)


def new_owner_token() -> str:
    """An id for this process's journals: pid plus randomness (pids are reused)."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


def _create_locked(path: Path) -> int:
    """Create ``path`` already locked: made and locked under a temporary name, then renamed.

    A lock file that can be seen is therefore always locked by its owner while it runs; were it
    created in place, a probe between ``open`` and ``flock`` would take a live owner for dead.
    """
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temporary, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return fd


def owner_is_alive(directory: Path, owner: str) -> bool:
    """True while the process that wrote ``owner``'s journals still runs."""
    try:
        fd = os.open(directory / f"{owner}{LOCK_SUFFIX}", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock if it got one
    return False


@dataclass(slots=True)
class _Segment:
    """One journal file, mapped into memory: lines are copied in at ``size``."""

    map: mmap.mmap
    size: int = 0


class IntakeJournal:
    """This process's journal segments in ``directory``: append lines, read them back in order.

    A segment is a file of SEGMENT_BYTES (sparse) mapped shared into memory. Appending copies
    the line into the mapping: the kernel owns those pages at once, so they reach the file even
    if the process is killed the next instant, and the copy neither makes a system call nor lets
    go of the GIL (a ``write(2)`` would let any helper thread run first and make the caller wait
    for the GIL to come back). Bytes past the last line are zeros.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.owner = new_owner_token()
        self._lock = threading.Lock()
        self._sequence_lock = threading.Lock()
        self._lock_fd = _create_locked(directory / f"{self.owner}{LOCK_SUFFIX}")
        self._sequence = 0
        self._segments: dict[Path, _Segment] = {}
        self._spare: tuple[Path, _Segment] | None = None
        self.path = self._use(*self._create(SEGMENT_BYTES))
        #: Resource digests already defined in the current segment.
        self.defined_resources: set[str] = set()

    def _create(self, capacity: int) -> tuple[Path, _Segment]:
        with self._sequence_lock:
            self._sequence += 1
            sequence = self._sequence
        path = self.directory / f"{self.owner}.{sequence:06d}{JOURNAL_SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, capacity)
            mapping = mmap.mmap(fd, capacity)
        finally:
            os.close(fd)  # the mapping keeps the file open
        # Fault every page in now, so that appends do not take a page fault (and a filesystem
        # block reservation) each time they cross into a new page.
        with contextlib.suppress(OSError, ValueError):
            mapping.madvise(_MADV_POPULATE_WRITE)
        return path, _Segment(mapping)

    def _use(self, path: Path, segment: _Segment) -> Path:
        self._segments[path] = segment
        self.defined_resources = set()
        return path

    def prepare_spare(self) -> None:
        """Create the next segment ahead of time (the worker calls this), so a caller that
        fills the current one does not have to create a file."""
        if self._spare is None:
            spare = self._create(SEGMENT_BYTES)
            with self._lock:
                if self._spare is None:
                    self._spare = spare
                    return
            self._discard(*spare)

    def append(self, lines: bytes, resource_line: bytes, digest: str) -> None:
        """Copy ``lines`` in (with the resource definition first if this segment lacks it).

        Raises RuntimeError once the journal is sealed.
        """
        with self._lock:
            segment = self._segments.get(self.path)
            if segment is None:
                raise RuntimeError("the outcome journal is closed")
            if digest not in self.defined_resources:
                lines = resource_line + lines
            end = segment.size + len(lines)
            if end > len(segment.map):
                if digest in self.defined_resources:
                    lines = resource_line + lines
                spare, self._spare = self._spare, None
                if spare is None or len(spare[1].map) < len(lines):
                    if spare is not None:
                        self._discard(*spare)
                    spare = self._create(max(SEGMENT_BYTES, len(lines)))
                self.path = self._use(*spare)
                segment = self._segments[self.path]
                end = len(lines)
            segment.map[segment.size : end] = lines
            segment.size = end
            self.defined_resources.add(digest)

    def own_segments(self) -> list[tuple[Path, bool]]:
        """This process's segments, oldest first, each with whether it is still written to."""
        with self._lock:  # a consistent view: a caller may be switching segments right now
            current = self.path
            return [(path, path == current) for path in sorted(self._segments)]

    def read_own(self, path: Path, offset: int) -> tuple[list[bytes], int]:
        """Lines of one of this process's segments from ``offset``, and the offset after them."""
        segment = self._segments.get(path)
        if segment is None:
            return [], offset
        size = segment.size  # every byte before it was copied in by a finished append
        if size <= offset:
            return [], offset
        return bytes(segment.map[offset:size]).splitlines(), size

    @staticmethod
    def _discard(path: Path, segment: _Segment) -> None:
        segment.map.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    def seal(self) -> None:
        """Take no more lines: every segment becomes finished, so all of them can be retired."""
        with self._lock:
            self.path = self.directory / "(sealed)"

    def retire(self, path: Path) -> bool:
        """Unmap and delete a finished segment once everything in it is in the store.

        Returns False (and keeps it) if ``path`` is the segment being written to.
        """
        with self._lock:
            if path == self.path:
                return False
            segment = self._segments.pop(path, None)
        if segment is not None:
            segment.map.close()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return True

    def orphan_files(self) -> Iterator[tuple[str, list[Path]]]:
        """Journals of owners that are no longer running, grouped by owner."""
        owners: dict[str, list[Path]] = {}
        for path in self.directory.glob(f"*{JOURNAL_SUFFIX}"):
            owner = path.name.split(".", 1)[0]
            if owner != self.owner:
                owners.setdefault(owner, []).append(path)
        for lock in self.directory.glob(f"*{LOCK_SUFFIX}"):
            owner = lock.name[: -len(LOCK_SUFFIX)]
            if owner != self.owner:
                owners.setdefault(owner, [])
        for owner, paths in sorted(owners.items()):
            if not owner_is_alive(self.directory, owner):
                yield owner, sorted(paths)

    def forget_owner(self, owner: str) -> None:
        """Remove a dead owner's lock file once its journals are taken over."""
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{owner}{LOCK_SUFFIX}").unlink()

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the inherited mappings and lock, leaving the files alone."""
        self._segments = {}
        self._spare = None
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        self._lock_fd = -1

    def close(self, *, remove_lock: bool = False) -> None:
        """Unmap the segments and release the owner lock; leftover files wait for the next start."""
        with self._lock:
            for segment in self._segments.values():
                segment.map.close()
            self._segments = {}
            if self._spare is not None:
                self._discard(*self._spare)
                self._spare = None
            if remove_lock:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{self.owner}{LOCK_SUFFIX}").unlink()
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = -1


def read_complete_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Lines of a journal file from ``offset`` up to the last complete one, and the offset after.

    The file's unused tail is zeros (it was mapped at full size), and JSON text never holds a
    NUL byte, so the data ends at the first NUL.
    """
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    zero = data.find(b"\0")
    if zero >= 0:
        data = data[:zero]
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return data[: end + 1].splitlines(), offset + end + 1
