"""Fixtures: a live HTTP receiver and an HTTP client for the dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.webhooks.helpers import Receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client
