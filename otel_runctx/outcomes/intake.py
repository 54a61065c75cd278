"""Moving journal lines into the spool's store: this process's segments and dead owners' files.

A segment is deleted only after every good line in it is in the store, in the transaction that
also records how far the journal was read, so a crash in between makes the next reader skip
what is stored (and outcome ids are unique in the store, so a line read twice is stored once).
Damage stays local: a line that is not a journal line, holds a NUL byte, or was torn by a crash
is skipped alone, counted as ``outcome_spool.corrupt_lines`` and said on stderr.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from otel_runctx.outcomes.journal import IntakeJournal, read_journal_file
from otel_runctx.outcomes.records import split_line
from otel_runctx.outcomes.store import SpoolStore
from otel_runctx.stats import count, report_error

__all__ = ["FreshSender", "JournalIntake"]

#: Sends this process's just-read outcomes without storing them (the worker's fast lane): given
#: their outcome ids, returns the ids it delivered (the collector acknowledged them).
FreshSender = Callable[[Sequence[str]], set[str]]


class JournalIntake:
    """Reads journals into ``store``; used by the one thread that owns ``store``."""

    def __init__(self, journal: IntakeJournal, store: SpoolStore) -> None:
        self.journal = journal
        self.store = store
        # issue 10: outcome id -> monotonic time its pending record may be sent anyway.
        self._held: dict[str, float] = {}

    def hold(self, outcome_id: str, seconds: float) -> None:
        """Keep ``outcome_id``'s pending record from being sent for ``seconds`` (issue 10)."""
        self._held[outcome_id] = time.monotonic() + seconds

    def still_held(self) -> list[str]:
        """Outcome ids whose pending record must not be sent yet (expired holds are dropped)."""
        if not self._held:
            return []
        now = time.monotonic()
        for outcome_id, until in list(self._held.items()):
            if until <= now:
                self._held.pop(outcome_id, None)
        return list(self._held)

    def ingest_own(self, *, everything: bool = False, fresh: FreshSender | None = None) -> None:
        """Store this process's new lines; retire finished segments (all of them if sealed).

        ``fresh`` is offered the new outcome rows first; those it delivered are not stored
        (their journal lines count as read all the same)."""
        for path, current in self.journal.own_segments():
            self._ingest_own_segment(path, finished=everything or not current, fresh=fresh)
        if not everything:
            self.journal.prepare_spare()

    def _ingest_own_segment(self, path: Path, *, finished: bool, fresh: FreshSender | None) -> None:
        offset = self.store.journal_offset(path.name)
        lines, end = self.journal.read_own(path, offset)
        self._ingest_lines(path, lines, end, damaged=0, fresh=fresh)
        if finished and self.journal.retire(path):
            self.store.forget_journal(path.name)

    def ingest_orphans(self) -> None:
        """Take over the journals of owners that died, then their lock files."""
        for owner, paths in self.journal.orphan_files():
            for path in paths:
                offset = self.store.journal_offset(path.name)
                lines, damaged, end = read_journal_file(path, offset)
                self._ingest_lines(path, lines, end, damaged=damaged)
                # Only now, with every good line stored and committed, is the file removed.
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                self.store.forget_journal(path.name)
            self.journal.forget_owner(owner)

    def _ingest_lines(
        self,
        path: Path,
        lines: list[bytes],
        end: int,
        *,
        damaged: int,
        fresh: FreshSender | None = None,
    ) -> None:
        resources: list[tuple[str, bytes]] = []
        rows: list[tuple[str, str, bytes]] = []
        finals: list[tuple[str, str, bytes]] = []
        for line in lines:
            try:
                kind, outcome_id, digest, body = split_line(line)
            except ValueError:
                damaged += 1
                continue
            if kind == "r":
                resources.append((digest, body))
            elif kind == "f":  # a final record that replaces its pending one (issue 10)
                finals.append((outcome_id, digest, body))
            else:
                rows.append((outcome_id, digest, body))
        if damaged:
            count("outcome_spool.corrupt_lines", damaged)
            report_error(
                "outcome_spool.corrupt_lines",
                message=f"skipped {damaged} damaged line(s) in {path.name}; the other lines "
                "were kept (counted as outcome_spool.corrupt_lines)",
            )
        if not (resources or rows or finals) and not damaged:
            return
        if fresh is not None and rows:
            # Sent before the transaction that records the journal as read: a crash in between
            # re-reads these lines and sends them again (at least once, as the store's rows).
            delivered = fresh([outcome_id for outcome_id, _, _ in rows])
            if delivered:
                rows = [row for row in rows if row[0] not in delivered]
        _, dropped = self.store.ingest(resources, rows, (path.name, end), finals)
        for outcome_id, _, _ in finals:  # stored in place of the pending one: release it
            self._held.pop(outcome_id, None)
        if dropped:
            count("outcome_spool.dropped", dropped)
            report_error(
                "outcome_spool.full",
                message=f"the spool is over {self.store.max_bytes} bytes; dropped the "
                f"{dropped} oldest outcome(s) (counted as outcome_spool.dropped)",
            )
