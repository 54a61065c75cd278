"""pytest fixtures for end-to-end tests: ``sink``, ``collector``, ``redis_server``, ``apps``.

Every test under tests/e2e is marked ``e2e`` (select with ``-m e2e``, skip with
``-m "not e2e"``). On a failing test the fixtures print what their processes logged, so the
report shows rotel's and the apps' output next to the assertion.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from .harness import AppRunner, Collector, RedisServer, Sink, find_redis_server

_E2E_DIR = Path(__file__).resolve().parent
_CALL_FAILED = pytest.StashKey[bool]()
_REDIS_MISSING = "redis-server not installed: apt-get install redis-server"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``e2e`` marker."""
    config.addinivalue_line(
        "markers", "e2e: end-to-end test that starts real processes (rotel, redis, apps)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected from this folder as ``e2e``."""
    for item in items:
        if _E2E_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember whether the test body failed, so fixtures can dump logs at teardown."""
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    """Whether the requesting test's body failed."""
    return request.node.stash.get(_CALL_FAILED, False)


def _in_ci() -> bool:
    """Whether we run in CI (``CI`` set to anything but empty/0/false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture
def sink(request: pytest.FixtureRequest) -> Iterator[Sink]:
    """A started OTLP/HTTP sink; query it with ``spans()``/``logs()``/``wait_for_*``."""
    with Sink() as started:
        yield started
        if _failed(request):
            print(started.summary())


@pytest.fixture
def collector(sink: Sink, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Collector]:
    """A running rotel forwarding to ``sink``; stopped (flushed) at teardown."""
    rotel = Collector(sink.endpoint, log_path=tmp_path / "rotel.log")
    rotel.start()
    try:
        yield rotel
    finally:
        rotel.stop()
        if _failed(request):
            print(rotel.describe())


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free loopback port; skipped locally, failed in CI if absent."""
    binary = find_redis_server()
    if binary is None:
        if _in_ci():
            pytest.fail(f"{_REDIS_MISSING} (CI must run the e2e tests, not skip them)")
        pytest.skip(_REDIS_MISSING)
    with RedisServer(binary, workdir=tmp_path / "redis") as server:
        yield server


@pytest.fixture
def apps(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AppRunner]:
    """Start child apps with ``apps.start(argv, env=...)``; all are killed at teardown."""
    runner = AppRunner(tmp_path / "apps")
    try:
        yield runner
    finally:
        runner.close()
        if _failed(request):
            for app in runner:
                print(app.describe())
