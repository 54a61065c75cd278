"""The spool's SQLite store: outcome records waiting for the collector's acknowledgement.

WAL mode, ``synchronous=NORMAL``: a committed row survives the process being killed (not
necessarily a power cut). Several processes may share one store (the default path is per user):
a worker *leases* the rows it is sending, so two workers do not send the same rows, and a lease
held by a process that died is released at once (see ``journal.owner_is_alive``).

The store is bounded: when the payload bytes exceed the cap, the oldest rows are deleted, and the
number dropped is returned to the caller (who counts and logs it) and kept in ``meta.dropped``.

Fork safety: SQLite holds process-wide mutexes while a call runs. A fork taken while a worker
thread is inside SQLite leaves those mutexes locked in the child, whose first ``connect`` then
waits forever (seen in the fork tests). So every store call holds one process-wide guard, and
``os.register_at_fork`` takes that guard around each fork: a fork waits for the call in progress
(short; bounded by ``busy_timeout``) and the child starts with SQLite idle.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from otel_runctx.stats import count

__all__ = ["SpoolRow", "SpoolStore"]

_F = TypeVar("_F", bound=Callable[..., Any])
_sqlite_guard = threading.RLock()


def _guarded(method: _F) -> _F:
    """Run ``method`` holding the process-wide SQLite guard (see the module docstring)."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _sqlite_guard:
            return method(*args, **kwargs)

    return call  # type: ignore[return-value]


def _hold_before_fork() -> None:
    _sqlite_guard.acquire()


def _release_after_fork_in_parent() -> None:
    _sqlite_guard.release()


def _renew_after_fork_in_child() -> None:
    global _sqlite_guard
    _sqlite_guard = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_hold_before_fork,
        after_in_parent=_release_after_fork_in_parent,
        after_in_child=_renew_after_fork_in_child,
    )

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    seq INTEGER PRIMARY KEY,
    outcome_id TEXT NOT NULL UNIQUE,
    resource_id INTEGER NOT NULL,
    payload BLOB NOT NULL,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class SpoolRow:
    seq: int
    resource_id: int
    payload: bytes
    outcome_id: str


#: Rows per INSERT statement: one statement is one step (one GIL round trip; see ``lease``),
#: and 300 rows of 3 values stay under SQLite's oldest limit of 999 variables.
_ROWS_PER_STATEMENT = 300


def _unpack_rows(packed: str | None) -> list[SpoolRow]:
    """The rows ``lease`` packed into one text: seq, resource id, hex id, hex payload, ..."""
    if not packed:
        return []
    fields = packed.split(" ")
    rows = [
        SpoolRow(
            int(fields[at]),
            int(fields[at + 1]),
            bytes.fromhex(fields[at + 3]),
            bytes.fromhex(fields[at + 2]).decode(),
        )
        for at in range(0, len(fields), 4)
    ]
    rows.sort(key=lambda row: row.seq)  # group_concat does not promise an order
    return rows


class SpoolStore:
    """One connection to the spool database. Not thread-safe: one worker thread uses it."""

    @_guarded
    def __init__(self, path: Path, max_bytes: int, *, busy_timeout_ms: int = 5_000) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = path
        self.max_bytes = max_bytes
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    # -- transactions ------------------------------------------------------------------------

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _add_meta(self, key: str, amount: int) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
            (key, amount),
        )

    # -- intake ------------------------------------------------------------------------------

    @_guarded
    def ingest(
        self,
        resources: Sequence[tuple[str, bytes]],
        rows: Sequence[tuple[str, str, bytes]],
        progress: tuple[str, int] | None = None,
        finals: Sequence[tuple[str, str, bytes]] = (),
    ) -> tuple[int, int]:
        """Insert ``rows`` (outcome_id, resource digest, payload) in one transaction.

        ``progress`` (journal name, offset) is saved in the same transaction, so a journal is
        never ingested twice. Rows whose outcome id is already stored are skipped. Returns
        (rows inserted, oldest rows dropped to respect the size cap).
        """
        inserted = added_bytes = 0
        with self._transaction():
            for digest, payload in resources:
                self._db.execute(
                    "INSERT OR IGNORE INTO resources(digest, payload) VALUES (?, ?)",
                    (digest, payload),
                )
            ids = dict(self._db.execute("SELECT digest, id FROM resources").fetchall())
            # New rows get seq > this (rowid is max + 1; we hold the write lock).
            before = self._db.execute("SELECT coalesce(max(seq), 0) FROM outcomes").fetchone()[0]
            values = [(o, ids[d], p) for o, d, p in rows if d in ids]
            if len(values) < len(rows):
                count("outcome_spool.missing_resource", len(rows) - len(values))
            for start in range(0, len(values), _ROWS_PER_STATEMENT):
                chunk = values[start : start + _ROWS_PER_STATEMENT]
                inserted += self._db.execute(
                    "INSERT OR IGNORE INTO outcomes(outcome_id, resource_id, payload) VALUES "
                    + ",".join(("(?, ?, ?)",) * len(chunk)),
                    [field for row in chunk for field in row],
                ).rowcount
            if inserted == len(values):
                added_bytes = sum(len(p) for _, _, p in values)
            elif inserted:  # some were already stored (a journal read twice): measure the rest
                added_bytes = int(
                    self._db.execute(
                        "SELECT total(length(payload)) FROM outcomes WHERE seq > ?", (before,)
                    ).fetchone()[0]
                )
            # issue 10: a final record replaces the pending one with its outcome id (early
            # outcome); if that one was already sent, the final one is stored as a new row.
            finals_values = [(o, ids[d], p) for o, d, p in finals if d in ids]
            if finals_values:
                self._db.executemany(
                    "INSERT INTO outcomes(outcome_id, resource_id, payload) VALUES (?, ?, ?) "
                    "ON CONFLICT(outcome_id) DO UPDATE SET payload = excluded.payload, "
                    "resource_id = excluded.resource_id",
                    finals_values,
                )
                added_bytes += sum(len(p) for _, _, p in finals_values)  # a soft cap
            if added_bytes:
                self._add_meta("bytes", added_bytes)
            if progress is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                    (f"journal:{progress[0]}", progress[1]),
                )
            dropped = self._enforce_cap()
        return inserted, dropped

    def _enforce_cap(self) -> int:
        total = self._meta("bytes")
        if total <= self.max_bytes:
            return 0
        dropped = freed = 0
        for seq, size in self._db.execute(
            "SELECT seq, length(payload) FROM outcomes ORDER BY seq"
        ).fetchall():
            if total - freed <= self.max_bytes:
                break
            self._db.execute("DELETE FROM outcomes WHERE seq = ?", (seq,))
            freed += size
            dropped += 1
        self._add_meta("bytes", -freed)
        self._add_meta("dropped", dropped)
        return dropped

    @_guarded
    def journal_offset(self, name: str) -> int:
        return self._meta(f"journal:{name}")

    @_guarded
    def forget_journal(self, name: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM meta WHERE key = ?", (f"journal:{name}",))

    # -- delivery ----------------------------------------------------------------------------

    @_guarded
    def lease(
        self,
        owner: str,
        limit: int,
        lease_seconds: float,
        is_alive: Callable[[str], bool],
        held: Sequence[str] = (),
    ) -> list[SpoolRow]:
        """Lease up to ``limit`` of the oldest rows nobody (alive) is sending.

        Rows whose outcome id is in ``held`` (pending early outcomes of runs still live in this
        process, issue 10) are left alone."""
        now = time.time()
        with self._transaction():
            holders = [
                holder
                for (holder,) in self._db.execute(
                    "SELECT DISTINCT lease_owner FROM outcomes "
                    "WHERE lease_owner IS NOT NULL AND lease_owner != ? AND lease_until > ?",
                    (owner, now),
                ).fetchall()
            ]
            for holder in holders:
                if not is_alive(holder):
                    self._db.execute(
                        "UPDATE outcomes SET lease_owner = NULL, lease_until = 0 "
                        "WHERE lease_owner = ?",
                        (holder,),
                    )
            skip = f" AND outcome_id NOT IN ({','.join('?' * len(held))})" if held else ""
            until = now + lease_seconds
            self._db.execute(
                "UPDATE outcomes SET lease_owner = ?, lease_until = ? WHERE seq IN ("
                f"SELECT seq FROM outcomes WHERE (lease_until <= ? OR lease_owner = ?){skip} "
                "ORDER BY seq LIMIT ?)",
                (owner, until, now, owner, *held, limit),
            )
            # The leased rows in one result row: Python's sqlite3 gives up the GIL for every
            # row it steps through, and a worker waits up to the switch interval (5 ms) to get
            # it back from a busy caller each time (RETURNING a batch took ~0.6 s that way).
            (packed,) = self._db.execute(
                "SELECT group_concat(seq || ' ' || resource_id || ' ' || hex(outcome_id) || ' ' "
                "|| hex(payload), ' ') FROM (SELECT * FROM outcomes "
                "WHERE lease_owner = ? AND lease_until = ? ORDER BY seq)",
                (owner, until),
            ).fetchone()
        return _unpack_rows(packed)

    @_guarded
    def resource_payload(self, resource_id: int) -> bytes | None:
        row = self._db.execute(
            "SELECT payload FROM resources WHERE id = ?", (resource_id,)
        ).fetchone()
        return bytes(row[0]) if row else None

    @_guarded
    def delete(self, seqs: Sequence[int]) -> None:
        """Delete delivered rows (only call after the collector acknowledged them)."""
        with self._transaction():
            freed = 0
            for start in range(0, len(seqs), 500):
                chunk = seqs[start : start + 500]
                marks = ",".join("?" * len(chunk))
                # Two single-step statements, not DELETE ... RETURNING (a step per row).
                (size,) = self._db.execute(
                    f"SELECT total(length(payload)) FROM outcomes WHERE seq IN ({marks})", chunk
                ).fetchone()
                self._db.execute(f"DELETE FROM outcomes WHERE seq IN ({marks})", chunk)
                freed += int(size)
            self._add_meta("bytes", -freed)

    @_guarded
    def release(self, seqs: Sequence[int]) -> None:
        """Give up the lease on rows that could not be sent, so they are tried again."""
        with self._transaction():
            self._db.executemany(
                "UPDATE outcomes SET lease_owner = NULL, lease_until = 0 WHERE seq = ?",
                [(seq,) for seq in seqs],
            )

    # -- inspection --------------------------------------------------------------------------

    @_guarded
    def pending(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outcomes").fetchone()[0])

    @_guarded
    def dropped_total(self) -> int:
        return self._meta("dropped")

    @_guarded
    def checkpoint(self) -> None:
        self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    @_guarded
    def close(self) -> None:
        self._db.close()

    def abandon(self) -> sqlite3.Connection:
        """Hand over the connection without closing it (a forked child must not close it)."""
        return self._db


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error): takes the write lock first."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
