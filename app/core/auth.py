"""API keys and the Principal.

A key's token is ``dlb_<organization id><key id>_<secret>`` (ids as hex): the ids locate the
key row within its tenant (so lookup stays on one shard), the secret makes it unguessable.
Only SHA-256(token) is stored: the token has 256 bits of entropy, so a slow password hash
would add latency without adding safety. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

TOKEN_PREFIX = "dlb_"
_ID_HEX = 32

# Resource names usable in scopes ("accounts:read", "accounts:write"); "*" grants all.
SCOPE_RESOURCES: tuple[str, ...] = (
    "accounts",
    "users",
    "teams",
    "api_keys",
    "audit_log",
    "organization",
    "events",
    "pipelines",
    "opportunities",
    "tasks",
    "jobs",
    "stakeholders",
    "activities",
    "leads",
    "signals",
    "territories",
    "products",
    "quotes",
    "approvals",
    "contracts",
    "webhooks",
    "partners",
    "metrics",
    "forecasts",
    "campaigns",
    "nurture",
)
ALL_SCOPES: tuple[str, ...] = (
    "*",
    *(f"{r}:{a}" for r in SCOPE_RESOURCES for a in ("read", "write")),
)


@dataclass(frozen=True, slots=True)
class Principal:
    organization_id: uuid.UUID
    api_key_id: uuid.UUID
    user_id: uuid.UUID | None
    partner_id: uuid.UUID | None
    role: str | None
    scopes: frozenset[str] = field(default_factory=frozenset)

    def has_scope(self, scope: str) -> bool:
        """``*`` grants everything; ``x:write`` implies ``x:read``."""
        if "*" in self.scopes or scope in self.scopes:
            return True
        resource, _, action = scope.partition(":")
        return action == "read" and f"{resource}:write" in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: uuid.UUID
    token: str
    key_hash: str
    prefix: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(organization_id: uuid.UUID, key_id: uuid.UUID) -> IssuedKey:
    token = f"{TOKEN_PREFIX}{organization_id.hex}{key_id.hex}_{secrets.token_urlsafe(32)}"
    return IssuedKey(id=key_id, token=token, key_hash=hash_token(token), prefix=token[:12])


def parse_token(token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(organization id, key id) encoded in a token, or None when it is malformed."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    ids = token[len(TOKEN_PREFIX) : len(TOKEN_PREFIX) + 2 * _ID_HEX]
    rest = token[len(TOKEN_PREFIX) + 2 * _ID_HEX :]
    if len(ids) != 2 * _ID_HEX or not rest.startswith("_") or len(rest) < 20:
        return None
    try:
        return uuid.UUID(hex=ids[:_ID_HEX]), uuid.UUID(hex=ids[_ID_HEX:])
    except ValueError:
        return None


def token_matches(token: str, stored_hash: str | None) -> bool:
    """Constant-time comparison; with no stored hash it does the same work and says no."""
    return hmac.compare_digest(hash_token(token), stored_hash or "0" * 64) and bool(stored_hash)


class RateLimiter:
    """Token bucket per API key, per worker process (a shared store comes with scale-out)."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._buckets: dict[uuid.UUID, tuple[float, float]] = {}

    def acquire(self, key: uuid.UUID) -> int | None:
        """None if allowed, else the seconds to wait before retrying."""
        if self.capacity <= 0:
            return None
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.refill_per_second)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return max(1, int((1.0 - tokens) / self.refill_per_second + 0.999))
        self._buckets[key] = (tokens - 1.0, now)
        return None


class VerifiedKeys:
    """Keys this worker verified in the last ``ttl_seconds``: their principals, so that a
    request with a recently seen key skips the lookup (a pool checkout, ``BEGIN``, a
    ``SELECT``, ``COMMIT``). Entries are keyed by the token's hash; only keys that passed
    every check are kept.

    Revoking a key, changing or deactivating a user in this process drops every entry
    (``forget_all``, called on commit); another worker notices after at most ``ttl_seconds``.
    """

    MAX_ENTRIES = 10_000
    _generation = 0  # bumped by forget_all; entries of an older generation are ignored

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: dict[str, tuple[Principal, datetime | None, float, int]] = {}

    @classmethod
    def forget_all(cls) -> None:
        cls._generation += 1

    def get(self, token: str, now: datetime) -> Principal | None:
        if self.ttl_seconds <= 0:
            return None
        entry = self._entries.get(hash_token(token))
        if entry is None:
            return None
        principal, expires_at, verified_at, generation = entry
        if (
            generation != VerifiedKeys._generation
            or time.monotonic() - verified_at > self.ttl_seconds
            or (expires_at is not None and expires_at <= now)
        ):
            return None
        return principal

    def put(self, token: str, principal: Principal, expires_at: datetime | None) -> None:
        if self.ttl_seconds <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        self._entries[hash_token(token)] = (
            principal,
            expires_at,
            time.monotonic(),
            VerifiedKeys._generation,
        )
