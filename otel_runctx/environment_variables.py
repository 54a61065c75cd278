"""The ``OTEL_RUNCTX_*`` variable names, for ``opentelemetry-instrument --help``.

``opentelemetry-instrument`` turns every module attribute starting with ``OTEL_`` of an
``opentelemetry_environment_variables`` entry point into a flag (``OTEL_RUNCTX_JSONL_PATH`` becomes
``--runctx_jsonl_path``). The names are taken from :mod:`otel_runctx.settings`, where every
setting is defined, so this list cannot drift from what is actually read. Nothing else may be
named ``OTEL_*`` here: a second flag with the same name is an argparse error that stops the CLI.
Variables that hold secrets (signing keys) get no flag: a command line is visible to every user
of the machine in ``ps``.
"""

from __future__ import annotations

from otel_runctx import settings as _settings

_SECRETS = ("KEY", "SECRET", "TOKEN", "PASSWORD")


def _names() -> list[str]:
    return sorted(
        value
        for name, value in vars(_settings).items()
        if name.startswith("ENV_")
        and isinstance(value, str)
        and value.startswith("OTEL_RUNCTX_")
        and not any(secret in value for secret in _SECRETS)
    )


for _name in _names():
    globals()[_name] = _name
