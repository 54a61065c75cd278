"""generate_run_id: RFC 9562 UUIDv7, strictly increasing within one process."""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid

import pytest

from otel_runctx import generate_run_id
from otel_runctx.ids import _UUIDv7Generator


def test_run_id_is_a_version_7_rfc_9562_uuid() -> None:
    parsed = uuid.UUID(generate_run_id())
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_run_id_embeds_the_current_unix_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(generate_run_id())
    after = time.time_ns() // 1_000_000
    assert before <= parsed.int >> 80 <= after


def test_100k_ids_in_a_tight_loop_are_strictly_increasing_and_unique() -> None:
    ids = [generate_run_id() for _ in range(100_000)]
    as_ints = [uuid.UUID(i).int for i in ids]
    assert all(a < b for a, b in itertools.pairwise(as_ints))
    # Canonical strings sort the same way, so backends can order runs by id.
    assert ids == sorted(ids)


def test_ids_from_many_threads_are_unique() -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def mint(slot: list[str]) -> None:
        slot.extend(generate_run_id() for _ in range(5_000))

    threads = [threading.Thread(target=mint, args=(slot,)) for slot in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for slot in results for i in slot]
    assert len(set(everything)) == len(everything) == 40_000
    for slot in results:
        assert slot == sorted(slot)


def test_counter_overflow_advances_the_timestamp_instead_of_going_backwards() -> None:
    mint = _UUIDv7Generator()
    first = uuid.UUID(mint())
    mint._last_ms += 10_000  # pretend the clock stepped back by 10 s
    mint._counter = (1 << 42) - 1  # and the counter is exhausted
    second = uuid.UUID(mint())
    assert second.int > first.int
    assert second.version == 7 and second.variant == uuid.RFC_4122


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_reuse_the_parents_random_bits() -> None:
    # Random bits are read from the OS in blocks; a child that kept the inherited block would
    # mint the same ids as its parent in the same millisecond.
    mint = _UUIDv7Generator()
    os.register_at_fork(after_in_child=mint._after_fork_in_child)
    mint()  # fill the pool
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: mint, report, leave without running the parent's cleanup
        try:
            os.write(write_end, "\n".join(mint() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent_ids = {mint() for _ in range(50)}
    with os.fdopen(read_end) as pipe:
        child_ids = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(child_ids) == 50
    # The last 32 bits are pure randomness: shared bits would repeat whatever the clock did.
    assert not {i[-8:] for i in parent_ids} & {i[-8:] for i in child_ids}
