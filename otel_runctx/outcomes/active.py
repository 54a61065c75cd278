"""The process's one active outcome spool: where ``emit_outcome`` writes durably, if anywhere.

The ``runctx_outcome`` exporter switches a spool on here when it is built; delivery only looks it
up. Keeping the slot in ``outcomes/`` lets delivery find the spool without importing exporters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from otel_runctx.outcomes.spool import OutcomeSpool

__all__ = ["activate_spool", "get_active_spool", "spool_for_path"]

_lock = threading.Lock()
_active: OutcomeSpool | None = None


def get_active_spool() -> OutcomeSpool | None:
    """The spool ``emit_outcome`` writes to, or None while none is switched on."""
    return _active


def activate_spool(spool: OutcomeSpool | None) -> OutcomeSpool | None:
    """Make ``spool`` the process's outcome spool (None switches it off); return the previous."""
    global _active
    with _lock:
        previous, _active = _active, spool
    return previous


def spool_for_path(path: Path, build: Callable[[], OutcomeSpool]) -> OutcomeSpool:
    """The active spool if it lives at ``path``; otherwise ``build()`` one and switch it on."""
    global _active
    with _lock:
        if _active is None or _active.path != path:
            _active = build()
        return _active
