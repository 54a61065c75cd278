"""The spool's intake: a per-process append-only journal the caller writes to.

``emit_outcome`` must not return before its outcome is on disk, and must stay fast. Copying
one line into a shared file mapping costs about a microsecond and survives the process being
killed the moment after (the pages belong to the kernel's page cache); a SQLite commit per
outcome costs tens of microseconds. So callers append here and the spool's worker moves lines
into SQLite in batches. Neither survives a power cut: that would need an fsync per outcome.

A mapping is only safe over blocks the file system has really allocated: a store into a page of
a sparse file on a full disk is a SIGBUS that kills the process. So each segment's space is
reserved with ``posix_fallocate`` before it is mapped; when that fails (disk full, quota, a file
system without it) the segment is written with plain ``pwrite`` calls instead, and a write that
fails raises ``OSError`` to the spool, which sends the outcome directly.

Each process owns a lock file ``<owner>.lock`` it holds an exclusive ``flock`` on for its whole
life. The kernel drops that lock when the process dies, however it dies, so another process can
tell a dead owner's journals (safe to take over) from a live one's (hands off). The owner token
is ``<pid>-<random>``, and every destructive step checks that the calling process is the one
that created the journal: a forked child inherits this object but never deletes or rewrites
what belongs to its parent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from otel_runctx.outcomes.segment import Segment, create_segment
from otel_runctx.stats import count

__all__ = ["IntakeJournal", "owner_is_alive", "read_journal_file"]

JOURNAL_SUFFIX = ".journal"
LOCK_SUFFIX = ".lock"
#: Size of one journal segment (its space is reserved when it is created).
SEGMENT_BYTES = 4 * 1024 * 1024


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


def _pid_of(owner: str) -> int | None:
    head = owner.split("-", 1)[0]
    return int(head) if head.isascii() and head.isdigit() else None


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_is_alive(directory: Path, owner: str) -> bool:
    """True while the process that wrote ``owner``'s journals may still run.

    The lock decides when its file exists. Without the file (a clean shutdown removes it; a
    bug could too) the owner counts as alive while its pid runs: taking a live process's
    journals would lose what it appends next, waiting for a reused pid only delays a takeover.
    """
    try:
        fd = os.open(directory / f"{owner}{LOCK_SUFFIX}", os.O_RDWR)
    except FileNotFoundError:
        pid = _pid_of(owner)
        return pid is not None and pid != os.getpid() and _pid_running(pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock if it got one
    return False


class IntakeJournal:
    """This process's journal segments in ``directory``: append lines, read them back in order."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.owner = new_owner_token()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._sequence_lock = threading.Lock()
        self._lock_fd = _create_locked(directory / f"{self.owner}{LOCK_SUFFIX}")
        self._sequence = 0
        self._segments: dict[Path, Segment] = {}
        self._spare: tuple[Path, Segment] | None = None
        try:
            self.path = self._use(*self._create(SEGMENT_BYTES))
        except BaseException:
            self.close(remove_lock=True)
            raise
        #: Resource digests already defined in the current segment.
        self.defined_resources: set[str] = set()

    def is_mine(self) -> bool:
        """True in the process that created this journal (False in a forked child)."""
        return os.getpid() == self._pid

    def _create(self, capacity: int) -> tuple[Path, Segment]:
        with self._sequence_lock:
            self._sequence += 1
            sequence = self._sequence
        path = self.directory / f"{self.owner}.{sequence:06d}{JOURNAL_SUFFIX}"
        segment = create_segment(path, capacity)
        if segment.map is None:
            count("outcome_spool.plain_write_segments")
        return path, segment

    def _use(self, path: Path, segment: Segment) -> Path:
        self._segments[path] = segment
        self.defined_resources = set()
        return path

    def prepare_spare(self) -> None:
        """Create the next segment ahead of time (the worker calls this), so a caller that
        fills the current one does not have to create a file."""
        if self._spare is None and self.is_mine():
            spare = self._create(SEGMENT_BYTES)
            with self._lock:
                if self._spare is None:
                    self._spare = spare
                    return
            self._discard(*spare)

    def append(self, lines: bytes, resource_line: bytes, digest: str) -> None:
        """Copy ``lines`` in (with the resource definition first if this segment lacks it).

        Raises RuntimeError once the journal is sealed or in a forked child, OSError when the
        bytes could not be written (the segment is then unchanged).
        """
        if not self.is_mine():
            raise RuntimeError("the outcome journal belongs to the parent process")
        with self._lock:
            segment = self._segments.get(self.path)
            if segment is None:
                raise RuntimeError("the outcome journal is closed")
            if digest not in self.defined_resources:
                lines = resource_line + lines
            if segment.size + len(lines) > segment.capacity:
                if digest in self.defined_resources:
                    lines = resource_line + lines
                spare, self._spare = self._spare, None
                if spare is None or spare[1].capacity < len(lines):
                    if spare is not None:
                        self._discard(*spare)
                    spare = self._create(max(SEGMENT_BYTES, len(lines)))
                self.path = self._use(*spare)
                segment = self._segments[self.path]
            segment.write(lines)
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
        size = segment.size  # every byte before it was written by a finished append
        if size <= offset:
            return [], offset
        return segment.read(offset, size).splitlines(), size

    def _discard(self, path: Path, segment: Segment) -> None:
        segment.close()
        if self.is_mine():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def seal(self) -> None:
        """Take no more lines: every segment becomes finished, so all of them can be retired."""
        with self._lock:
            self.path = self.directory / "(sealed)"

    def retire(self, path: Path) -> bool:
        """Close and delete a finished segment once everything in it is in the store.

        Returns False (and keeps it) if ``path`` is the segment being written to, or when
        called in a process that did not create this journal.
        """
        if not self.is_mine():
            return False
        with self._lock:
            if path == self.path:
                return False
            segment = self._segments.pop(path, None)
        if segment is not None:
            segment.close()
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
        if owner != self.owner and not owner_is_alive(self.directory, owner):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / f"{owner}{LOCK_SUFFIX}").unlink()

    def abandon_after_fork(self) -> None:
        """In a forked child: drop the inherited segments and lock, leaving the files alone."""
        for segment in self._segments.values():
            segment.abandon()
        if self._spare is not None:
            self._spare[1].abandon()
        self._segments = {}
        self._spare = None
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        self._lock_fd = -1

    def close(self, *, remove_lock: bool = False) -> None:
        """Close the segments and release the owner lock; leftover files wait for the next start.

        In a forked child this only lets go of inherited handles: the files are the parent's.
        """
        with self._lock:
            for segment in self._segments.values():
                segment.close()
            self._segments = {}
            if self._spare is not None:
                self._discard(*self._spare)
                self._spare = None
            if remove_lock and self.is_mine():
                with contextlib.suppress(FileNotFoundError):
                    (self.directory / f"{self.owner}{LOCK_SUFFIX}").unlink()
            if self._lock_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)
            self._lock_fd = -1


def read_journal_file(path: Path, offset: int) -> tuple[list[bytes], int, int]:
    """Lines of another (dead) process's journal file from ``offset``.

    Returns (lines, damaged pieces, offset after the data). A mapped segment's unused tail is
    zeros (JSON text never holds a NUL byte), so trailing zeros are not data. Damage stays
    local: a piece with a NUL byte inside, or a last line without its newline (torn by a
    crash), is counted as damaged and skipped; every other line is returned. Lines that are
    not journal lines at all are for the caller to reject.
    """
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], 0, offset
    data = data.rstrip(b"\0")
    pieces = data.split(b"\n")
    torn = pieces.pop()  # after the last newline: b"" unless the last line was cut short
    lines: list[bytes] = []
    damaged = 1 if torn.strip(b"\0") else 0
    for piece in pieces:
        piece = piece.strip(b"\0")  # zeros ending exactly at a line boundary hide no data
        if not piece:
            continue
        if b"\0" in piece:
            damaged += 1
        else:
            lines.append(piece)
    return lines, damaged, offset + len(data)
