"""The committed OpenAPI document, rendered from the app without touching a database."""

from __future__ import annotations

import json

from app.core.config import Settings
from app.main import create_app

# Never connected to: building the app creates an engine lazily.
_PLACEHOLDER_URL = "postgresql://openapi@localhost/openapi"


def render_openapi() -> str:
    app = create_app(Settings(database_url=_PLACEHOLDER_URL, log_level="WARNING"))
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"
