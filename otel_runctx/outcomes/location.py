"""Where a spool may live: checked before anything is opened, so a bad path fails at startup.

A FIFO would make SQLite (or a plain ``open``) block forever, a directory or a device
(``/dev/full``) cannot hold a database, and an unwritable directory fails on the first write.
Each case raises :class:`SpoolUnavailable` with the reason and the fix, which the caller turns
into direct delivery and one stderr line.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["SpoolUnavailable", "check_spool_location"]

_FIX = "point OTEL_RUNCTX_OUTCOME_SPOOL at a file path in a writable directory, or set it to off"


class SpoolUnavailable(RuntimeError):
    """The spool cannot start; ``reason`` says why and ``fix`` what to change."""

    def __init__(self, reason: str, fix: str = _FIX) -> None:
        super().__init__(f"{reason}; {fix}")
        self.reason = reason
        self.fix = fix


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_spool_location(path: Path, intake_directory: Path) -> None:
    """Raise SpoolUnavailable unless ``path`` can be a SQLite file and the intake a directory."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = os.stat(candidate).st_mode
        except FileNotFoundError:
            continue
        except OSError as error:
            raise SpoolUnavailable(
                f"the spool file {candidate} cannot be examined: {error}"
            ) from error
        if not stat.S_ISREG(mode):
            raise SpoolUnavailable(f"the spool file {candidate} is {_kind(mode)}")
    try:
        mode = os.stat(intake_directory).st_mode
        if not stat.S_ISDIR(mode):
            raise SpoolUnavailable(f"the spool's intake {intake_directory} is {_kind(mode)}")
    except FileNotFoundError:
        pass
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        intake_directory.mkdir(exist_ok=True, mode=0o700)
    except OSError as error:
        raise SpoolUnavailable(
            f"the spool directory {parent} cannot be created: {error}"
        ) from error
    for directory in (parent, intake_directory):
        if not os.access(directory, os.W_OK | os.X_OK):
            raise SpoolUnavailable(f"the spool directory {directory} is not writable")
