"""``make bench``: run every ``benchmarks/bench_*.py`` in this one process and print tables."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import platform
import sys

from rich.console import Console

import benchmarks
from benchmarks._harness import render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument("only", nargs="*", help="run only these modules (e.g. bench_stamping)")
    args = parser.parse_args(argv)
    # Wide enough that variant names and ratios stay on one line when piped to a file.
    console = Console(width=None if sys.stdout.isatty() else 150)
    console.print(f"python {platform.python_version()} on {platform.machine()}, quick={args.quick}")
    names = sorted(
        m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_")
    )
    if args.only:
        names = [n for n in names if n in args.only]
    if not names:
        console.print("no benchmark modules found")
        return 1
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        render(module.TITLE, module.measure(args.quick), console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
