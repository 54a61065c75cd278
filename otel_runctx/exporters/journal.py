"""The spool's intake: a per-process append-only journal the caller writes to.

``emit_outcome`` must not return before its outcome is on disk, and must stay fast. One
``write(2)`` of one line to a file opened with ``O_APPEND`` costs a few microseconds and
survives the process being killed the moment after (the data is in the kernel's page cache); a
SQLite commit per outcome costs tens. So callers append here and the spool's worker moves lines
into SQLite in batches.

Each process owns a lock file ``<owner>.lock`` it holds an exclusive ``flock`` on for its whole
life. The kernel drops that lock when the process dies, however it dies, so another process can
tell a dead owner's journals (safe to take over) from a live one's (hands off) without pids.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

__all__ = ["IntakeJournal", "owner_is_alive"]

JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"
#: Start a new journal file once the current one is this large.
ROTATE_BYTES = 4 * 1024 * 1024


def new_owner_token() -> str:
    """An id for this process's journals: pid plus randomness (pids are reused)."""
    return f"{os.getpid()}-{secrets.token_hex(6)}"


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


class IntakeJournal:
    """This process's journal files in ``directory``: append lines, read them back in order."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.owner = new_owner_token()
        self._lock = threading.Lock()
        self._lock_fd = os.open(
            directory / f"{self.owner}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o600
        )
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._sequence = 0
        self._fd = -1
        self._size = 0
        self.path = self._open_next()
        #: Resource digests already defined in the current journal file.
        self.defined_resources: set[str] = set()

    def _open_next(self) -> Path:
        self._sequence += 1
        path = self.directory / f"{self.owner}.{self._sequence:06d}{JOURNAL_SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._size = 0
        return path

    def append(self, lines: bytes, resource_line: bytes | None, digest: str) -> None:
        """Write ``lines`` (with the resource definition first if this file lacks it)."""
        with self._lock:
            if digest not in self.defined_resources:
                lines = (resource_line or b"") + lines
                self.defined_resources.add(digest)
            view = memoryview(lines)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += len(lines)

    def rotate_if_large(self) -> Path | None:
        """Start a new file if the current one is over ROTATE_BYTES; return the finished one."""
        with self._lock:
            if self._size < ROTATE_BYTES:
                return None
            finished, old_fd = self.path, self._fd
            self.path = self._open_next()
            self.defined_resources = set()
        os.close(old_fd)
        return finished

    def own_files(self) -> list[Path]:
        """This process's journal files, oldest first (the current one last)."""
        return sorted(self.directory.glob(f"{self.owner}.*{JOURNAL_SUFFIX}"))

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
        """In a forked child: drop the inherited descriptors (and the lock) but not the files."""
        for fd in (self._fd, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fd = self._lock_fd = -1

    def close(self, *, remove_lock: bool = False) -> None:
        """Close the files and release the owner lock; leftover journals wait for the next start."""
        with self._lock:
            if remove_lock:
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{self.owner}{LOCK_SUFFIX}").unlink()
            for fd in (self._fd, self._lock_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._fd = self._lock_fd = -1


def read_complete_lines(path: Path, offset: int) -> tuple[list[bytes], int]:
    """Lines of ``path`` from ``offset`` up to the last newline, and the offset after them.

    A line still being written (no newline yet) is left for the next read.
    """
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    return data[: end + 1].splitlines(), offset + end + 1
