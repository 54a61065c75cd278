"""Entry point for ``make bench``."""

from __future__ import annotations

import sys

if __name__ == "__main__":
    print("no benchmarks are registered yet", file=sys.stderr)
    sys.exit(1)
