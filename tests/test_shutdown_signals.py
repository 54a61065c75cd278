"""The SIGTERM stand-in for SIG_DFL: exports, then dies by the signal as before (issue 12).

Each case runs in a child interpreter (signal dispositions are process-wide) that sets up an SDK
with a 60 s batch delay exporting to a JSONL file, so only the shutdown export can write it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from otel_runctx.exporters.jsonl import JsonlSpanExporter
    from otel_runctx.distro.shutdown import install_shutdown_flush

    provider = TracerProvider(shutdown_on_exit=False)
    batch = BatchSpanProcessor(JsonlSpanExporter(), schedule_delay_millis=60000)
    provider.add_span_processor(batch)
    trace.set_tracer_provider(provider)
    install_shutdown_flush()
    mode = sys.argv[1]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL   # we look like the default
    if mode == "restore":   # what uvicorn / UvicornWorker do: save, replace, put back
        previous = signal.signal(signal.SIGTERM, lambda *a: None)
        assert previous == signal.SIG_DFL
        signal.signal(signal.SIGTERM, previous)
    if mode == "app_handler":
        def handler(signum, frame):
            print("APP HANDLER", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, handler)
    with trace.get_tracer("t").start_as_current_span("buffered"):
        pass
    print("READY", flush=True)
    time.sleep(60)
    """
)


def _run(tmp_path: Path, mode: str) -> tuple[int, str, str]:
    (tmp_path / "child.py").write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_RUNCTX_JSONL_PATH"] = str(tmp_path / "out.jsonl")
    proc = subprocess.Popen(
        [sys.executable, "child.py", mode],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "READY"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    path = tmp_path / "out.jsonl"
    return proc.returncode, path.read_text() if path.exists() else "", out + err


def test_sigterm_with_the_default_action_exports_and_still_dies_by_sigterm(
    tmp_path: Path,
) -> None:
    status, exported, output = _run(tmp_path, "default")
    assert status == -signal.SIGTERM, output
    assert '"buffered"' in exported, output


def test_a_restored_default_is_still_ours(tmp_path: Path) -> None:
    status, exported, output = _run(tmp_path, "restore")
    assert status == -signal.SIGTERM, output
    assert '"buffered"' in exported, output


def test_an_app_handler_is_left_alone(tmp_path: Path) -> None:
    status, exported, output = _run(tmp_path, "app_handler")
    assert status == 3, output
    assert "APP HANDLER" in output
    assert exported == ""  # the app's handler decides how it ends; nothing of ours ran
