"""HTTP load benchmark: `dealbase serve --workers 2` against the floor, at two volumes.

For each volume (default 10,000 and 1,000,000 opportunities) it seeds a fresh database with
`dealbase seed-demo --scale N` (or reuses one given with --small-url / --large-url), then
starts on loopback, side by side on that database:

- `dealbase serve --workers 2` (rate limit off, background jobs parked so they don't run
  during the measurement; logs at the default level, to a file), and
- the floor, `bench/floor.py`: FastAPI + asyncpg sending the same SQL, under uvicorn with
  the same 2 workers,

and drives each with wrk (a C load generator: `apt-get install wrk`) through
`bench/requests.lua`, each scenario bounded in time (--duration) and in count
(--max-requests), after a short warm-up. Where the floor does the same (get, list,
list_deep, create), the two alternate for --rounds rounds (dealbase first, then the floor
first, …): this host's speed drifts by ±25 % within minutes, and one run of each, one after
the other, compared the drift as much as the servers. The ratio reported is the median of
the rounds' ratios, with their range.

    get        GET /v1/opportunities/{id} (1,000 random deals, cycled)
    list       GET /v1/opportunities?limit=50 (first page)
    list_deep  the same with a cursor 90 % deep into the deals
    create     POST /v1/leads (unique e-mails)
    move       POST /v1/opportunities/{id}/stage: proposal → needs_analysis (with a
               reason) → proposal …, over up to 2,000 open deals (dealbase only)
    summary    GET /v1/metrics/summary?period=<last full quarter> (dealbase only; fewer
               connections), answered from the report cache after the first request
    summary_computed
               the same with `Cache-Control: no-cache`: every request computes all KPIs

It prints requests/s, p50 and p99 per scenario, the ratio to the floor where the floor does
the same, both servers' RSS (all processes), and how list and summary latency grow from
the small volume to the large one.

    .venv/bin/python bench/http_load.py                       # seeds scale 2 and 200 (~25 min)
    .venv/bin/python bench/http_load.py --large-url postgresql://…/dealbase_bench_…  # reuse
    .venv/bin/python bench/http_load.py --skip-large --rounds 1    # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(HERE))

from metrics import mint_key  # noqa: E402

from app.core.database import start_embedded_postgres  # noqa: E402

CRUD = ("get", "list", "list_deep", "create")
SCENARIOS = (*CRUD, "move", "summary", "summary_computed")


@dataclass
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failed: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @classmethod
    def of_rounds(cls, rounds: list[Result]) -> Result:
        """Throughput over all rounds; the median round's p50 and p99."""
        return cls(
            requests=sum(r.requests for r in rounds),
            seconds=sum(r.seconds for r in rounds),
            p50_ms=statistics.median(r.p50_ms for r in rounds),
            p99_ms=statistics.median(r.p99_ms for r in rounds),
            failed=sum(r.failed for r in rounds),
        )


@dataclass
class Volume:
    label: str
    url: str
    token: str
    opportunities: int = 0
    dealbase: dict[str, Result] = field(default_factory=dict)
    floor: dict[str, Result] = field(default_factory=dict)
    # Per scenario, each round's dealbase req/s over the floor's.
    ratios: dict[str, list[float]] = field(default_factory=dict)
    rss_mib: dict[str, float] = field(default_factory=dict)


# --- databases ---------------------------------------------------------------------------


async def _connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        user=parsed.username,
        password=parsed.password or None,
        host=parsed.host or parsed.query.get("host"),
        port=parsed.port,
        database=parsed.database or "postgres",
    )


async def _admin(server: str, statement: str) -> None:
    conn = await _connect(server)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def seeded_database(server: str, scale: int) -> tuple[str, str]:
    """A new database on ``server`` seeded by `dealbase seed-demo` (URL, admin API key)."""
    name = f"dealbase_http_{scale}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    started = time.perf_counter()
    out = subprocess.run(
        [str(BIN / "dealbase"), "seed-demo", "--scale", str(scale)],
        env={**os.environ, "DATABASE_URL": url, "DEALBASE_LOG_LEVEL": "WARNING"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print(f"seeded scale {scale} into {name} in {time.perf_counter() - started:.0f} s")
    asyncio.run(_admin(url, "VACUUM ANALYZE"))
    return url, json.loads(out.strip().splitlines()[-1])["api_key"]


# --- request files -------------------------------------------------------------------------


def _cursor(created_at: datetime, deal_id: uuid.UUID) -> str:
    payload = {"s": ["-created_at", "-id"], "v": [created_at.isoformat(), str(deal_id)]}
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def last_full_quarter(today: date) -> str:
    quarter = (today.month - 1) // 3  # 0-based current quarter = 1-based previous one
    return f"{today.year}-Q{quarter}" if quarter else f"{today.year - 1}-Q4"


async def write_request_files(volume: Volume, folder: Path) -> dict[str, Path]:
    conn = await _connect(volume.url)
    try:
        volume.opportunities = await conn.fetchval(
            "SELECT count(*) FROM opportunities WHERE deleted_at IS NULL"
        )
        ids = await conn.fetch(
            "SELECT id FROM opportunities WHERE deleted_at IS NULL ORDER BY random() LIMIT 1000"
        )
        deep = await conn.fetchrow(
            "SELECT created_at, id FROM opportunities WHERE deleted_at IS NULL"
            " ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1",
            int(volume.opportunities * 0.9),
        )
        movable = await conn.fetch(
            "SELECT o.id FROM opportunities o JOIN pipeline_stages s"
            " ON s.organization_id = o.organization_id AND s.id = o.stage_id"
            " JOIN pipelines p ON p.organization_id = s.organization_id AND p.id = s.pipeline_id"
            " WHERE p.name = 'B2B sales' AND s.key = 'proposal' AND o.deleted_at IS NULL"
            " AND o.amount IS NOT NULL AND o.close_date IS NOT NULL LIMIT 2000"
        )
    finally:
        await conn.close()
    back = json.dumps({"stage": "needs_analysis", "reason": "bench: scope changed"})
    forward = json.dumps({"stage": "proposal"})
    lines = {
        "get": [f"GET\t/v1/opportunities/{r['id']}" for r in ids],
        "list": ["GET\t/v1/opportunities?limit=50"],
        "list_deep": [
            f"GET\t/v1/opportunities?limit=50&cursor={_cursor(deep['created_at'], deep['id'])}"
        ],
        "create": [
            "POST\t/v1/leads\t"
            + json.dumps(
                {
                    "first_name": "Deniz",
                    "last_name": "Yük",
                    "email": "deniz.{run}.{n}@yuk-test.com.tr",
                    "company_name": "Yük Lojistik A.Ş.",
                }
            )
        ],
        # Every deal goes back, then every deal forward again: a deal's two moves are a
        # whole pass apart, never in flight together. `reset_moved_deals` puts the deals of
        # an unfinished pass back before the next run.
        "move": [f"POST\t/v1/opportunities/{r['id']}/stage\t{back}" for r in movable]
        + [f"POST\t/v1/opportunities/{r['id']}/stage\t{forward}" for r in movable],
        "summary": [
            f"GET\t/v1/metrics/summary?period={last_full_quarter(datetime.now(UTC).date())}"
        ],
    }
    lines["summary_computed"] = lines["summary"]  # sent with Cache-Control: no-cache
    files = {}
    for name, content in lines.items():
        files[name] = folder / f"{volume.label}-{name}.tsv"
        files[name].write_text("\n".join(content) + "\n")
    return files


# --- servers --------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(command: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[int]:
    """A server process group; yields its leader's pid once it answers HTTP."""
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=ROOT,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise SystemExit(f"{command[0]} exited; see {log}")
                with contextlib.suppress(httpx.HTTPError):
                    # Any HTTP answer means the workers are up (the floor has no health route).
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                    break
                time.sleep(0.3)
            else:
                raise SystemExit(f"{command[0]} did not start; see {log}")
            time.sleep(1)  # let the second worker finish starting
            yield process.pid
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def rss_mib(leader: int) -> float:
    """Resident memory of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    total, stack = 0, [leader]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


# --- load -----------------------------------------------------------------------------------


def wrk(
    port: int,
    requests_file: Path,
    token: str,
    seconds: float,
    connections: int,
    limit: int,
    cache_control: str | None = None,
) -> Result:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--timeout",
            "30s",
            "-s",
            str(HERE / "requests.lua"),
            f"http://127.0.0.1:{port}",
        ],
        env={
            **os.environ,
            "REQUESTS": str(requests_file),
            "TOKEN": token,
            "MAX_REQUESTS": str(limit),
            "RUN": uuid.uuid4().hex[:8],
            **({"CACHE_CONTROL": cache_control} if cache_control else {}),
        },
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    raw = json.loads(line.removeprefix("RESULT "))
    return Result(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        failed=raw["socket_errors"] + raw["non_2xx"],
    )


def measure(volume: Volume, args: argparse.Namespace, logs: Path) -> None:
    files = asyncio.run(write_request_files(volume, logs))
    dealbase_port, floor_port = _free_port(), _free_port()
    dealbase_env = {
        "DATABASE_URL": volume.url,
        "DEALBASE_DEMO_DATA": "0",
        "DEALBASE_RATE_LIMIT_PER_MINUTE": "0",
        "DEALBASE_JOBS_INTERVAL_SECONDS": "0",
        "DEALBASE_WEBHOOK_INTERVAL_SECONDS": "0",
    }
    dealbase_cmd = [str(BIN / "dealbase"), "serve", "--port", str(dealbase_port), "--workers", "2"]
    floor_cmd = [
        str(BIN / "uvicorn"),
        "bench.floor:app",
        "--port",
        str(floor_port),
        "--workers",
        "2",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    with (
        server(
            dealbase_cmd, dealbase_env, logs / f"{volume.label}-dealbase.log", dealbase_port
        ) as dealbase_pid,
        server(
            floor_cmd,
            {  # asyncpg itself takes libpq-style URLs only
                "FLOOR_DATABASE_URL": make_url(volume.url)
                .set(drivername="postgresql")
                .render_as_string(hide_password=False)
            },
            logs / f"{volume.label}-floor.log",
            floor_port,
        ) as floor_pid,
    ):
        for name in args.scenarios:
            ports = {"dealbase": dealbase_port}
            if name in CRUD:
                ports["floor"] = floor_port
            measure_scenario(volume, name, ports, files[name], args)
        volume.rss_mib = {"dealbase": rss_mib(dealbase_pid), "floor": rss_mib(floor_pid)}


def measure_scenario(
    volume: Volume,
    name: str,
    ports: dict[str, int],
    requests_file: Path,
    args: argparse.Namespace,
) -> None:
    """Warm each server up, then run the scenario on each in alternating rounds."""
    connections = args.summary_connections if name.startswith("summary") else args.connections

    def run(who: str, seconds: float) -> Result:
        if name == "move":
            asyncio.run(reset_moved_deals(ports[who], requests_file, volume.token))
        return wrk(
            ports[who],
            requests_file,
            volume.token,
            seconds=seconds,
            connections=connections,
            limit=args.max_requests,
            cache_control="no-cache" if name == "summary_computed" else None,
        )

    for who in ports:
        run(who, 2)  # warm-up: connection pools, statement caches, the data's pages
    rounds: dict[str, list[Result]] = {who: [] for who in ports}
    for index in range(args.rounds if len(ports) > 1 else 1):
        for who in list(ports)[:: 1 if index % 2 == 0 else -1]:
            result = run(who, args.duration)
            rounds[who].append(result)
            print(
                f"  {volume.label:5} {name:16} {who:8} {result.rps:8.0f} req/s"
                f"  p50 {result.p50_ms:8.1f} ms  p99 {result.p99_ms:8.1f} ms"
                f"  ({result.requests} requests, {result.failed} failed)",
                flush=True,
            )
    volume.dealbase[name] = Result.of_rounds(rounds["dealbase"])
    if "floor" in rounds:
        volume.floor[name] = Result.of_rounds(rounds["floor"])
        volume.ratios[name] = [
            ours.rps / floor.rps
            for ours, floor in zip(rounds["dealbase"], rounds["floor"], strict=True)
        ]


async def reset_moved_deals(port: int, requests_file: Path, token: str) -> None:
    """Move the deals a stopped run left in needs_analysis forward again, through the API."""
    lines = requests_file.read_text().splitlines()  # noqa: ASYNC240 (a small local file)
    deals = [line.split("\t")[1].split("/")[3] for line in lines]
    await asyncio.sleep(5)  # requests in flight when wrk stopped still finish on the server
    headers = {"Authorization": f"Bearer {token}"}
    limit = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

        async def reset(deal: str) -> None:
            async with limit:
                got = await client.get(f"/v1/opportunities/{deal}", headers=headers)
                if got.json()["stage"] == "needs_analysis":
                    moved = await client.post(
                        f"/v1/opportunities/{deal}/stage",
                        json={"stage": "proposal"},
                        headers=headers,
                    )
                    moved.raise_for_status()

        await asyncio.gather(*(reset(deal) for deal in sorted(set(deals))))


# --- report ---------------------------------------------------------------------------------


def report(volumes: list[Volume], args: argparse.Namespace) -> None:
    print()
    print(
        f"Machine: {os.cpu_count()} CPUs, {platform.platform()},"
        f" Python {platform.python_version()};"
        f" wrk -t1 -c{args.connections} ({args.summary_connections} for summary),"
        f" {args.duration:g} s per run after a 2 s warm-up; {args.rounds} alternating rounds"
        " of dealbase and the floor where both serve the scenario"
    )
    for volume in volumes:
        print()
        print(f"### {volume.label}: {volume.opportunities:,} opportunities")
        print()
        print(
            "| scenario | dealbase req/s | p50 ms | p99 ms | floor req/s | p50 ms | p99 ms "
            "| throughput ratio: median (range) of the rounds | failed |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, ours in volume.dealbase.items():
            floor = volume.floor.get(name)
            ratios = volume.ratios.get(name, [])
            cells = (
                [
                    f"{floor.rps:,.0f}",
                    f"{floor.p50_ms:.1f}",
                    f"{floor.p99_ms:.1f}",
                    f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f})",
                ]
                if floor
                else ["", "", "", ""]
            )
            print(
                f"| {name} | {ours.rps:,.0f} | {ours.p50_ms:.1f} | {ours.p99_ms:.1f} | "
                + " | ".join(cells)
                + f" | {ours.failed} |"
            )
        print()
        print(
            f"RSS after the run: dealbase {volume.rss_mib['dealbase']:.0f} MiB,"
            f" floor {volume.rss_mib['floor']:.0f} MiB (all processes)"
        )
    if len(volumes) == 2:
        small, large = volumes
        print()
        print(f"p50 from {small.opportunities:,} to {large.opportunities:,} opportunities:")
        for name in ("list", "list_deep", "summary", "summary_computed"):
            if name not in args.scenarios:
                continue
            a, b = small.dealbase[name].p50_ms, large.dealbase[name].p50_ms
            print(f"  {name:16} {a:8.1f} ms → {b:8.1f} ms  ({b / a:.2f}×)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small-scale", type=int, default=2, help="2 = 10k deals")
    parser.add_argument("--large-scale", type=int, default=200, help="200 = 1M deals")
    parser.add_argument("--small-url", help="reuse a database seeded by seed-demo")
    parser.add_argument("--large-url", help="reuse a database seeded by seed-demo")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument(
        "--duration", type=float, default=5, help="seconds per scenario (per round)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alternating rounds of dealbase and the floor per scenario they share",
    )
    parser.add_argument("--max-requests", type=int, default=50_000, help="per scenario")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--summary-connections", type=int, default=2)
    parser.add_argument(
        "--scenarios",
        type=lambda names: tuple(names.split(",")),
        default=SCENARIOS,
        help=f"comma-separated subset of {','.join(SCENARIOS)} (a quick A/B look)",
    )
    args = parser.parse_args()
    if unknown := set(args.scenarios) - set(SCENARIOS):
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (or brew install wrk)")

    logs = Path(tempfile.mkdtemp(prefix="dealbase-http-bench-"))
    server_url = os.environ.get("DATABASE_URL")
    needs_server = not args.small_url or (not args.skip_large and not args.large_url)
    if needs_server and not server_url:
        server_url = start_embedded_postgres(logs / "pg", database="postgres", delete_on_exit=True)
    plan = [("10k", args.small_url, args.small_scale)]
    if not args.skip_large:
        plan.append(("1M", args.large_url, args.large_scale))
    volumes = []
    for label, url, scale in plan:
        if url:
            token = asyncio.run(mint_key(url))
        else:
            assert server_url is not None
            url, token = seeded_database(server_url, scale)
        volumes.append(Volume(label, url, token))
    for volume in volumes:
        print(f"measuring {volume.label} (logs in {logs})", flush=True)
        measure(volume, args, logs)
    report(volumes, args)


if __name__ == "__main__":
    main()
