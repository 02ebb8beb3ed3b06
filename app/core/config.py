"""One Settings object for the whole process (env prefix DEALBASE_, plus DATABASE_URL)."""

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DEALBASE_", extra="ignore")

    # No DATABASE_URL means: start an embedded PostgreSQL under data_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "DEALBASE_DATABASE_URL")
    )
    data_dir: Path = Path(".dealbase")
    demo_data: bool = True
    log_level: str = "INFO"
    log_json: bool = True
    # FastAPI's native OpenTelemetry (spans and metrics per request), for a provider set up
    # in the process (e.g. by `opentelemetry-instrument`). Off, it costs nothing per request.
    opentelemetry: bool = False
    db_pool_size: int = 10
    db_max_overflow: int = 10
    # Requests per minute per API key, per worker process; 0 disables the limiter.
    rate_limit_per_minute: int = 6000
    # How long a worker trusts a key it verified (revocation elsewhere takes this long to
    # reach it; in the worker that revokes, it is immediate); 0 checks every request.
    api_key_cache_seconds: float = Field(default=5, ge=0)
    max_body_bytes: int = 10 * 1024 * 1024
    # Bulk imports: 100,000 leads as CSV are about 17 MiB.
    max_import_bytes: int = 64 * 1024 * 1024
    idempotency_ttl_hours: int = 24
    # An in-flight idempotency claim older than this is considered abandoned (crashed worker).
    idempotency_stale_seconds: int = 60
    # How often `serve` runs the background jobs (follow-ups, …); 0 turns them off.
    jobs_interval_seconds: int = 300
    # How often `serve` dispatches pending webhook deliveries; 0 turns the dispatcher off.
    webhook_interval_seconds: float = 2
    # A webhook delivery attempt without a response within this is a failed attempt; a
    # delivery whose dispatcher died mid-call is sent again after twice this.
    webhook_timeout_seconds: float = Field(default=30, gt=0)


@lru_cache
def get_settings() -> Settings:
    return Settings()
