"""The ``otel-runctx`` command (also ``python -m otel_runctx``): ``doctor`` and ``report``.

``doctor`` prints plain text and needs nothing beyond otel-runctx itself, so it works in any
environment an app runs in. ``report`` reads files with DuckDB and draws tables with ``rich``
(both in the ``cli`` extra: ``pip install 'otel-runctx[cli]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import TextIO

from otel_runctx.cli.doctor import Diagnosis, diagnose

__all__ = ["main"]

_MARKS = {"ok": "ok     ", "warn": "WARN   ", "problem": "PROBLEM"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (non-zero when doctor finds a problem)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "doctor":
            return _doctor(args, sys.stdout)
        if args.command == "report":
            return _report(args, sys.stdout)
        parser.print_help()
        return 2
    except BrokenPipeError:
        return _reader_went_away()


def _reader_went_away() -> int:
    """``otel-runctx doctor | head``: the reader closed the pipe; stop quietly, like cat does.

    Python would otherwise print a traceback for the failed write and another one when it
    flushes stdout at exit; pointing stdout at /dev/null makes that final flush a no-op.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE: what a shell reports for a command stopped by the pipe


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-runctx", description="Check and read otel-runctx telemetry."
    )
    commands = parser.add_subparsers(dest="command")
    doctor = commands.add_parser(
        "doctor",
        help="check this process's OpenTelemetry setup; run it as "
        "`opentelemetry-instrument otel-runctx doctor` to check the zero-code setup",
    )
    doctor.add_argument(
        "--configure",
        action="store_true",
        help="call otel_runctx.configure() first, then check what it set up",
    )
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    report = commands.add_parser(
        "report", help="summarise runctx_jsonl files or OTLP JSON lines (the collector's file)"
    )
    report.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="files or globs (quote them): runctx_jsonl (OTEL_RUNCTX_JSONL_PATH) or OTLP JSON "
        "lines; .gz is read as gzip",
    )
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.add_argument("--html", metavar="PATH", help="also write a self-contained HTML page")
    report.add_argument(
        "--runs", type=int, default=20, help="how many runs the per-run table shows (default 20)"
    )
    report.add_argument(
        "--events", type=int, default=10, help="how many events the top-events table shows"
    )
    return parser


def _doctor(args: argparse.Namespace, out: TextIO) -> int:
    if args.configure:
        from otel_runctx.distro.configure import configure
        from otel_runctx.settings import ConfigError

        with contextlib.suppress(ConfigError):  # diagnose() reports the bad setting
            configure()
    diagnosis = diagnose()
    status = 1 if diagnosis.problems else 0
    try:
        if args.json:
            json.dump(diagnosis.as_dict(), out, indent=2, default=str)
            out.write("\n")
        else:
            _print_diagnosis(diagnosis, out)
        out.flush()
    except BrokenPipeError:
        _reader_went_away()  # the findings still decide the exit status
    return status


def _print_diagnosis(diagnosis: Diagnosis, out: TextIO) -> None:
    out.write("otel-runctx doctor\n\n")
    for finding in diagnosis.findings:
        out.write(f"  {_MARKS[finding.level]}  {finding.check}: {finding.detail}\n")
        if finding.fix:
            out.write(f"           fix: {finding.fix}\n")
    out.write("\nsettings (OTEL_RUNCTX_*):\n")
    for name, value in diagnosis.settings.items():
        out.write(f"  {name} = {value}\n")
    out.write("\nOpenTelemetry environment:\n")
    for name, value in diagnosis.otel_env.items() or {"(no OTEL_* variable set)": ""}.items():
        out.write(f"  {name}{' = ' + value if value else ''}\n")
    if diagnosis.spool is not None:
        out.write("\noutcome spool:\n")
        for name, value in diagnosis.spool.items():
            out.write(f"  {name} = {value}\n")
    problems = len(diagnosis.problems)
    out.write(f"\n{problems} problem(s) found.\n" if problems else "\nAll good.\n")


def _report(args: argparse.Namespace, out: TextIO) -> int:
    from otel_runctx.cli.report import ReportError, build_report

    try:
        # Tables show the first --runs runs; --json lists them all.
        report = build_report(args.files, max_runs=None if args.json else max(0, args.runs))
    except (ReportError, OSError) as error:
        sys.stderr.write(f"otel-runctx report: {error}\n")
        return 2
    if args.html:
        from otel_runctx.cli.report_html import write_html

        try:
            write_html(report, args.html)
        except OSError as error:
            sys.stderr.write(f"otel-runctx report: cannot write {args.html}: {error}\n")
            return 2
    if args.json:
        report.write_json(out)
        return 0
    try:
        from otel_runctx.cli.tables import print_report
    except ImportError:
        sys.stderr.write(
            "otel-runctx report: tables need rich: pip install 'otel-runctx[cli]' (or use --json)\n"
        )
        return 2
    print_report(report, out, max_runs=args.runs, max_events=args.events)
    if args.html:
        out.write(f"HTML report written to {args.html}\n")
    return 0
