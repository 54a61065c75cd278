"""``python -m otel_runctx``: the same as the ``otel-runctx`` command."""

from otel_runctx.cli.command import main

raise SystemExit(main())
