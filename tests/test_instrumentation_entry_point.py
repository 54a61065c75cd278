"""The real ``opentelemetry-instrument`` loads our instrumentor through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import contextvars
from concurrent.futures import ThreadPoolExecutor
from otel_runctx import run, get_run_context
plain = contextvars.ContextVar("plain", default=None)
plain.set("submitter")
with ThreadPoolExecutor(2) as pool, run("job", event_id="e", customer_id="c") as ctx:
    seen = pool.submit(lambda: (get_run_context(), plain.get())).result()
print("run carried" if seen[0] is ctx else "run dropped")
print("contextvars copied" if seen[1] == "submitter" else "contextvars not copied")
"""


def _instrumented(disabled: str) -> list[str]:
    command = Path(sys.executable).parent / "opentelemetry-instrument"
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": disabled,
    }
    result = subprocess.run(
        [str(command), sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\n")[:2]


def test_opentelemetry_instrument_activates_runctx_executors() -> None:
    # The threading instrumentor is disabled so that only ours can carry the run; it never copies
    # plain contextvars, ours does.
    assert _instrumented("threading") == ["run carried", "contextvars copied"]
    assert _instrumented("threading,runctx_executors") == ["run dropped", "contextvars not copied"]
