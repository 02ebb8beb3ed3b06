"""The ``dealbase`` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.core.config import get_settings
from app.core.database import create_engine, create_sessionmaker, resolve_database_url
from app.core.logging import configure_logging
from app.core.migrate import upgrade

if TYPE_CHECKING:
    from app.demo import DemoOrganization

cli = typer.Typer(help="dealbase: an API-first backend for B2B sales.", no_args_is_help=True)
orgs = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
cli.add_typer(orgs, name="orgs")
importer = typer.Typer(help="Bulk imports.", no_args_is_help=True)
cli.add_typer(importer, name="import")
jobs = typer.Typer(
    help="Background jobs (serve also runs them periodically).", no_args_is_help=True
)
cli.add_typer(jobs, name="jobs")


def _prepare_database() -> str:
    """Resolve the database (starting the embedded server if needed) and migrate it."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    url = resolve_database_url(settings)
    upgrade(url)
    return url


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """Migrate to head, load demo data into an empty database, then serve the API."""
    import uvicorn

    url = _prepare_database()
    settings = get_settings()
    if settings.demo_data:
        demo = asyncio.run(_seed_if_empty(url))
        if demo is not None:
            typer.echo(
                f"Loaded demo data. Admin API key for {demo.admin_email}:\n  {demo.api_key}",
                err=True,
            )
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dealbase-metrics-")
    typer.echo(f"Serving on http://{host}:{port} (docs at /docs)", err=True)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
    )


async def _seed_if_empty(url: str) -> DemoOrganization | None:
    from app.demo import database_is_empty, seed_demo

    engine = create_engine(url, get_settings())
    try:
        sessionmaker = create_sessionmaker(engine)
        if await database_is_empty(sessionmaker):
            return await seed_demo(sessionmaker)
        return None
    finally:
        await engine.dispose()


@cli.command()
def migrate() -> None:
    """Migrate the database to the newest schema."""
    _prepare_database()
    typer.echo("Database migrated to head.", err=True)


@cli.command("seed-demo")
def seed_demo_command(
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same data)")] = 7,
    scale: Annotated[int, typer.Option(min=1, help="Volume multiplier")] = 1,
) -> None:
    """Create the demo organization and print its admin API key as JSON."""
    from app.demo import seed_demo

    url = _prepare_database()

    async def run() -> dict[str, str]:
        engine = create_engine(url, get_settings())
        try:
            demo = await seed_demo(create_sessionmaker(engine), seed=seed, scale=scale)
            return {"organization_id": demo.organization_id, "api_key": demo.api_key}
        finally:
            await engine.dispose()

    typer.echo(json.dumps(asyncio.run(run())))


@orgs.command("create")
def create_org(
    name: Annotated[str, typer.Option(help="Organization name")],
    admin_email: Annotated[str, typer.Option(help="E-mail of the first admin")],
    admin_name: Annotated[str | None, typer.Option(help="Name of the first admin")] = None,
    currency: Annotated[str, typer.Option(help="Corporate currency (ISO 4217)")] = "TRY",
) -> None:
    """Create an organization with an admin; print one JSON line with its API key."""
    from app.users.service import create_organization

    url = _prepare_database()

    async def run() -> dict[str, str]:
        engine = create_engine(url, get_settings())
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                org, admin, token = await create_organization(
                    session,
                    name=name,
                    admin_email=admin_email,
                    admin_name=admin_name,
                    currency=currency.upper(),
                )
                return {"organization_id": str(org.id), "user_id": str(admin.id), "api_key": token}
        finally:
            await engine.dispose()

    typer.echo(json.dumps(asyncio.run(run())))


@jobs.command("run")
def run_job(
    name: Annotated[str, typer.Argument(help="The job: follow-ups, webhooks")],
) -> None:
    """Run a job once for every organization and print its totals as JSON (webhooks:
    deliver every event and retry that is due now)."""
    from dataclasses import asdict

    from app.jobs.service import JOBS, run_for_all
    from app.webhooks.dispatcher import dispatch_all

    if name not in (*JOBS, "webhooks"):
        typer.echo(f"Unknown job {name!r}; jobs: {', '.join((*JOBS, 'webhooks'))}", err=True)
        raise typer.Exit(2)
    url = _prepare_database()

    async def run() -> dict[str, int]:
        engine = create_engine(url, get_settings())
        try:
            if name == "webhooks":
                return asdict(
                    await dispatch_all(
                        create_sessionmaker(engine),
                        deadline=get_settings().webhook_timeout_seconds,
                    )
                )
            return asdict(await run_for_all(create_sessionmaker(engine), name))
        finally:
            await engine.dispose()

    typer.echo(json.dumps(asyncio.run(run())))


@cli.command("rebuild-rollups")
def rebuild_rollups(
    organization: Annotated[
        str | None, typer.Option(help="One organization's id (default: every organization)")
    ] = None,
) -> None:
    """Recompute the daily KPI roll-ups from the deals, stage history and activities (after rows
    were written around the API, e.g. with SQL); this also counts as a change, so cached KPI
    reports are computed afresh. Prints the organizations done as JSON."""
    import uuid

    from app.core.tenancy import Actor, bind_tenant
    from app.jobs.service import all_organization_ids
    from app.metrics.rollups import rebuild

    url = _prepare_database()

    async def run() -> dict[str, int]:
        engine = create_engine(url, get_settings())
        sessions = create_sessionmaker(engine)
        try:
            ids = (
                [uuid.UUID(organization)]
                if organization is not None
                else await all_organization_ids(sessions)
            )
            for org_id in ids:  # one transaction each: a large tenant does not hold the rest
                async with sessions() as session, session.begin():
                    bind_tenant(session, org_id, Actor())
                    await rebuild(session, org_id)
            return {"organizations": len(ids)}
        finally:
            await engine.dispose()

    typer.echo(json.dumps(asyncio.run(run())))


@importer.command("leads")
def import_leads(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or .json")],
    organization_id: Annotated[str, typer.Option(help="The organization to import into")],
) -> None:
    """Import leads from a CSV (header row) or JSON file, with a progress bar; prints the
    job's outcome as JSON."""
    import uuid

    from app.core.tenancy import Actor, bind_tenant
    from app.leads import imports

    url = _prepare_database()
    content_type = "application/json" if file.suffix.lower() == ".json" else "text/csv"
    rows = imports.parse_rows(file.read_bytes(), content_type)
    org = uuid.UUID(organization_id)

    async def run() -> dict[str, object]:
        engine = create_engine(url, get_settings())
        sessionmaker = create_sessionmaker(engine)
        try:
            async with sessionmaker() as session, session.begin():
                bind_tenant(session, org, Actor(request_id="cli:import"))
                job = await imports.create_job(session, len(rows), None)
            with typer.progressbar(length=len(rows), label="Importing leads") as bar:
                done = 0

                def advance(processed: int, _total: int) -> None:
                    nonlocal done
                    bar.update(processed - done)
                    done = processed

                await imports.run_import(
                    sessionmaker,
                    organization_id=org,
                    job_id=job.id,
                    rows=rows,
                    actor=Actor(request_id="cli:import"),
                    progress=advance,
                )
            async with sessionmaker() as session:
                bind_tenant(session, org, Actor())
                finished = await imports.get_job(session, job.id)
                return {
                    "job_id": str(finished.id),
                    "status": finished.status,
                    "created": finished.created_count,
                    "errors": finished.error_count,
                    "first_errors": finished.errors[:10],
                    "failure": finished.failure,
                }
        finally:
            await engine.dispose()

    outcome = asyncio.run(run())
    typer.echo(json.dumps(outcome, ensure_ascii=False))
    if outcome["status"] != "completed":
        raise typer.Exit(1)


@cli.command()
def openapi(
    output: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = Path(
        "openapi/openapi.json"
    ),
    check: Annotated[bool, typer.Option(help="Fail if the file differs")] = False,
) -> None:
    """Regenerate openapi/openapi.json from the app (no database needed)."""
    from app.openapi_doc import render_openapi

    document = render_openapi()
    if output is None:
        sys.stdout.write(document)
        return
    if check:
        if not output.exists() or output.read_text() != document:
            typer.echo(f"{output} is out of date: run `dealbase openapi`", err=True)
            raise typer.Exit(1)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    typer.echo(f"Wrote {output}", err=True)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
