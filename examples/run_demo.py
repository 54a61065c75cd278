"""``make demo``: run the support-ticket pipeline under the real ``opentelemetry-instrument``.

With no collector around, spans and log records go to a local JSON Lines file through the
``runctx_jsonl`` exporters, and ``otel-runctx report`` prints what each customer, workflow, event
and run did, and writes the same as one page, ``demo-output/report.html``. If
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set, the same demo exports via OTLP instead (to your
collector; see collector-config/) and there is no local report.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo-output", help="directory for the demo's files")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    telemetry, truth = out / "telemetry.jsonl", out / "ground-truth.json"
    telemetry.unlink(missing_ok=True)

    env = dict(os.environ)
    env.setdefault("OTEL_SERVICE_NAME", "support-ticket-demo")
    # Prices for the fake model, so the usage roll-up can estimate each run's cost.
    env.setdefault("OTEL_RUNCTX_PRICES", str(HERE / "prices.json"))
    to_collector = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    if not to_collector:
        # The README's no-collector recipe: traces, logs and metrics to the local file.
        env.update(OTEL_RUNCTX_LOCAL="true", OTEL_RUNCTX_JSONL_PATH=str(telemetry))
    where = env["OTEL_EXPORTER_OTLP_ENDPOINT"] if to_collector else str(telemetry)
    if to_collector:
        unreachable = _unreachable_endpoints(env)
        if unreachable:
            print(f"demo: cannot connect to your collector: {'; '.join(unreachable)}")
            print(
                "demo: nothing would arrive there. Start the collector, or unset "
                "OTEL_EXPORTER_OTLP_ENDPOINT for the local report."
            )
            return 1
    print(f"demo: running examples/support_tickets.py under opentelemetry-instrument -> {where}")
    started = time.perf_counter()
    app = [
        str(BIN / "opentelemetry-instrument"),
        sys.executable,
        str(HERE / "support_tickets.py"),
        "--ground-truth",
        str(truth),
    ]
    status = subprocess.run(app, env=env, check=False).returncode
    print(f"demo: pipeline finished in {time.perf_counter() - started:.1f} s (exit {status})")
    if status != 0:
        return status
    if to_collector:
        # Reachable before the run is all the demo can know: the collector's own pipeline
        # (and `otel-runctx doctor`) tell whether it exported further.
        print(f"demo: sent via OTLP to {where} (it accepted connections); no local report.")
        return 0
    page = out / "report.html"
    print(f"demo: report (otel-runctx report {telemetry} --html {page})\n")
    report = [sys.executable, "-m", "otel_runctx", "report", str(telemetry), "--html", str(page)]
    status = subprocess.run(report, check=False).returncode
    if status == 0:
        print(f"\ndemo: the report as a page: {page} (open it in a browser; it fetches nothing)")
    return status


def _unreachable_endpoints(env: dict[str, str]) -> list[str]:
    """The OTLP endpoints the demo would export to that refuse a TCP connection."""
    import socket

    from otel_runctx.cli.probes import CONNECT_TIMEOUT_SECONDS, host_port, otlp_endpoints

    failed = []
    for endpoint in otlp_endpoints(env):
        try:
            with socket.create_connection(host_port(endpoint), timeout=CONNECT_TIMEOUT_SECONDS):
                pass
        except OSError as error:
            failed.append(f"{endpoint} ({error.strerror or error})")
    return failed


if __name__ == "__main__":
    raise SystemExit(main())
