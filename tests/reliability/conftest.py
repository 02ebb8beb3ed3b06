"""One throw-away database and one ``dealbase serve --workers 2`` subprocess for the
reliability tests (never the session's shared test database: its tables are truncated after
each test).

The servers' logs go to a temporary folder, removed afterwards; set
``DEALBASE_TEST_KEEP_LOGS=1`` to keep it (``/tmp/dealbase-serve-*/serve-<n>.log``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import create_database, drop_database
from tests.reliability.harness import Server, running_server


@pytest.fixture(scope="package")
def reliability_database(server_url: str) -> Iterator[str]:
    url = create_database(server_url, "dealbase_rel")
    yield url
    drop_database(server_url, url)


@pytest.fixture(scope="package")
def server(reliability_database: str) -> Iterator[Server]:
    """Migrates the empty database on its first start. Tests may kill and restart it; it
    is running again (restarted if need be) for the next one."""
    with running_server(
        reliability_database,
        # A delivery attempt fails after 10 s; a killed dispatcher's lease ends after 20 s.
        DEALBASE_WEBHOOK_TIMEOUT_SECONDS="10",
    ) as started:
        yield started


@pytest.fixture
def live_server(server: Server) -> Server:
    if server.process is None or server.process.poll() is not None:
        server.restart()
    return server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, show the end of the servers' logs (errors logged there explain 500s)."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.failed:
        return
    servers = {id(v): v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Server)}
    for server in servers.values():
        for log in sorted(server.workdir.glob("serve-*.log")):
            lines = log.read_text(errors="replace").splitlines()[-40:]
            report.sections.append((f"{log.name} (last lines)", "\n".join(lines)))
