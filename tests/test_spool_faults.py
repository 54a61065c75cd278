"""The spool under faults: a full disk is never a signal, a spool that cannot start sends
directly and says why, and bad spool or JSONL paths never hang the process.

The disk-full tests run on a small tmpfs the test mounts (root is available in CI); where the
kernel refuses the mount they skip and say so.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_runctx import emit_outcome, run, stats
from otel_runctx.outcomes import segment as segment_module
from otel_runctx.outcomes.active import activate_spool, start_delivery
from otel_runctx.outcomes.location import SpoolUnavailable, check_spool_location
from otel_runctx.outcomes.segment import create_segment
from otel_runctx.outcomes.spool import OutcomeSpool
from tests.test_spool import RESOURCE, RecordingExporter, make_spool, record

ROOT = Path(__file__).parent.parent


@contextlib.contextmanager
def mounted_tmpfs(where: Path, size: str, *options: str) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``where``, unmounted afterwards; skips if it cannot be mounted."""
    where.mkdir(parents=True, exist_ok=True)
    flags = ",".join((f"size={size}", *options))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", flags, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"the kernel refused a tmpfs mount (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def run_script(
    script: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter from the repository root."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


# -- 1. no mapping without blocks ---------------------------------------------------------------


def test_a_segment_is_mapped_only_after_its_space_is_reserved(tmp_path: Path) -> None:
    segment = create_segment(tmp_path / "a.journal", 1 << 20)
    assert segment.map is not None
    assert os.stat(tmp_path / "a.journal").st_blocks * 512 >= 1 << 20  # allocated, not sparse
    segment.close()


def test_when_space_cannot_be_reserved_the_segment_is_written_plainly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(segment_module.os, "posix_fallocate", no_space)
    stats.reset()
    exporter = RecordingExporter()
    spool = make_spool(tmp_path / "s" / "outcomes.sqlite3", exporter)
    for i in range(30):
        assert spool.append(record(f"plain-{i}"), f"plain-{i}", RESOURCE, ("t", None))
    assert spool.flush(timeout=10)
    assert sorted(exporter.ids()) == sorted(f"plain-{i}" for i in range(30))
    assert stats.snapshot()["outcome_spool.plain_write_segments"] >= 1
    spool.shutdown(timeout=2)


FILL_THE_DISK = """
    import json, os, sys
    from pathlib import Path
    from otel_runctx import stats
    from otel_runctx.outcomes import journal
    from otel_runctx.outcomes.active import start_delivery
    from otel_runctx.outcomes.spool import OutcomeSpool
    from tests.test_spool import RESOURCE, RecordingExporter, record

    journal.SEGMENT_BYTES = 256 * 1024  # many segments: each new one meets the full disk
    mount, count = Path(sys.argv[1]), int(sys.argv[2])
    path = mount / "spool" / "outcomes.sqlite3"
    spooled = RecordingExporter(failing=True)  # nothing leaves the spool: the disk fills up
    direct = RecordingExporter()
    delivery = start_delivery(
        path,
        lambda: OutcomeSpool(path, max_bytes=1 << 40, exporter_factory=lambda: spooled,
                             poll_interval=0.02, max_backoff=0.05),
        lambda: direct,
    )
    assert delivery.spool is not None
    for i in range(count):
        delivery.deliver(record(f"full-{i}", "x" * 1000), f"full-{i}", RESOURCE, ("t", None))
    assert delivery.direct.flush(30)
    full = stats.snapshot()
    for leftover in mount.glob("filler*"):
        leftover.unlink()
    spooled.failing = False  # room again, and the collector is back: the spool drains
    drained = delivery.spool.flush(60)
    print("RESULT " + json.dumps({
        "drained": drained,
        "not_spooled": full.get("outcome_spool.not_spooled", 0),
        "direct": direct.ids(),
        "spooled": spooled.ids(),
    }), flush=True)
    delivery.shutdown(5)
"""


def test_a_full_disk_sends_outcomes_directly_and_never_kills_the_process(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "12m") as mount:
        (mount / "filler").write_bytes(b"\1" * (8 << 20))  # leave room for ~4 MiB only
        count = 6000  # ~6 MB of outcomes: far more than fits
        child = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(FILL_THE_DISK), str(mount), str(count)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    # Before the fix: SIGBUS (returncode -7, "exit 135") a few thousand outcomes in.
    assert child.returncode == 0, child.stderr[-3000:]
    result = json.loads(child.stdout.split("RESULT ", 1)[1])
    assert result["not_spooled"] > 0, "the disk never filled up: the test proves nothing"
    delivered = result["direct"] + result["spooled"]
    assert sorted(set(delivered)) == sorted(f"full-{i}" for i in range(count))
    assert len(result["direct"]) == result["not_spooled"]
    assert "otel-runctx: outcome_spool.append failed" in child.stderr
    assert "sent directly" in child.stderr
    print(f"disk full: {result['not_spooled']} of {count} sent directly, the rest spooled")


# -- 2. a spool that cannot start degrades to direct delivery -----------------------------------


def _bad_locations(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    fifo = tmp_path / "fifo.sqlite3"
    os.mkfifo(fifo)
    directory = tmp_path / "dir.sqlite3"
    directory.mkdir()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return {
        "fifo": (fifo, "a FIFO"),
        "directory": (directory, "a directory"),
        "dev-full": (Path("/dev/full"), "a device"),
        "parent-is-a-file": (blocker / "outcomes.sqlite3", "Not a directory"),
    }


@pytest.mark.parametrize("case", ["fifo", "directory", "dev-full", "parent-is-a-file"])
def test_bad_spool_locations_are_refused_with_the_reason(tmp_path: Path, case: str) -> None:
    path, reason = _bad_locations(tmp_path)[case]
    with pytest.raises(SpoolUnavailable, match=reason) as raised:
        check_spool_location(path, path.with_name(path.name + ".intake"))
    assert "OTEL_RUNCTX_OUTCOME_SPOOL" in str(raised.value)


def test_a_read_only_spool_directory_degrades_to_direct_delivery(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with mounted_tmpfs(tmp_path / "ro", "1m", "ro") as mount:
        path = mount / "outcomes.sqlite3"
        exporter = RecordingExporter()
        stats.reset()
        previous = activate_spool(None)
        try:
            delivery = start_delivery(
                path,
                lambda: OutcomeSpool(path, max_bytes=1 << 20, exporter_factory=lambda: exporter),
                lambda: exporter,
            )
            assert delivery.spool is None and delivery.degraded_reason
            for i in range(5):
                with run("ro", event_id=f"RO-{i}", customer_id="acme"):
                    emit_outcome("success")
            assert delivery.direct.flush(10)
            assert len(exporter.received) == 5  # was 0 of 5 before: SUCCESS, nothing sent
        finally:
            activate_spool(previous)
    err = capfd.readouterr().err
    assert err.count("otel-runctx: the outcome spool at") == 1
    assert "cannot start" in err and "sent directly" in err and "OTEL_RUNCTX_OUTCOME_SPOOL" in err
    assert stats.snapshot()["outcome_spool.degraded"] == 1


UNUSABLE_SPOOL = """
    import sys
    import otel_runctx.exporters.outcome as outcome
    from tests.test_spool import RecordingExporter
    exporter = RecordingExporter()
    outcome.build_otlp_log_exporter = lambda settings=None: exporter
    from otel_runctx import emit_outcome, run
    from otel_runctx.exporters import OutcomeExporter
    runctx_outcome = OutcomeExporter()  # as opentelemetry-instrument builds it
    for i in range(5):
        with run("bad-spool", event_id=f"B-{i}", customer_id="acme"):
            emit_outcome("success")
    assert runctx_outcome.force_flush(10_000)
    print(f"DELIVERED {len(exporter.received)}", flush=True)
    runctx_outcome.shutdown()
"""


@pytest.mark.parametrize("case", ["fifo", "directory", "dev-full", "parent-is-a-file"])
def test_an_unusable_spool_path_delivers_directly_and_exits_promptly(
    tmp_path: Path, case: str
) -> None:
    path, reason = _bad_locations(tmp_path)[case]
    child = run_script(UNUSABLE_SPOOL, {"OTEL_RUNCTX_OUTCOME_SPOOL": str(path)}, timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "DELIVERED 5" in child.stdout
    assert child.stderr.count("otel-runctx: the outcome spool at") == 1, child.stderr
    assert reason in child.stderr


JSONL_TO = """
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.resources import Resource
    from otel_runctx.exporters.jsonl import JsonlLogRecordExporter
    exporter = JsonlLogRecordExporter()
    result = exporter.export([ReadableLogRecord(LogRecord(body="x"), Resource.create({}))])
    print(f"RESULT {result.name}", flush=True)
    exporter.shutdown()
"""


@pytest.mark.parametrize("case", ["fifo", "directory", "dev-full", "parent-is-a-file"])
def test_a_bad_jsonl_path_is_said_at_startup_and_never_hangs(tmp_path: Path, case: str) -> None:
    path, _ = _bad_locations(tmp_path)[case]
    child = run_script(JSONL_TO, {"OTEL_RUNCTX_JSONL_PATH": str(path)}, timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    assert "RESULT FAILURE" in child.stdout
    assert "otel-runctx: jsonl." in child.stderr, child.stderr
    assert "OTEL_RUNCTX_JSONL_PATH" in child.stderr


def test_doctor_shows_a_spool_that_degraded_and_why(tmp_path: Path) -> None:
    from otel_runctx.cli.doctor import Diagnosis, _check_spool

    path = _bad_locations(tmp_path)["fifo"][0]
    exporter = RecordingExporter()
    previous = activate_spool(None)
    try:
        start_delivery(
            path,
            lambda: OutcomeSpool(path, max_bytes=1 << 20, exporter_factory=lambda: exporter),
            lambda: exporter,
        )
        diagnosis = Diagnosis()
        _check_spool(diagnosis)
    finally:
        activate_spool(previous)
    (finding,) = [f for f in diagnosis.findings if f.check == "outcome spool"]
    assert finding.level == "warn"
    assert "degraded" in finding.detail and "a FIFO" in finding.detail
    assert finding.fix is not None and "OTEL_RUNCTX_OUTCOME_SPOOL" in finding.fix
