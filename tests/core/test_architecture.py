"""Layering rules, checked by parsing imports."""

from __future__ import annotations

import ast
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.api import DOMAIN_ROUTERS, PREFIX

APP = Path(__file__).resolve().parents[2] / "app"
WEB_PACKAGES = ("fastapi", "starlette")
PURE_RULE_MODULES = (
    "accounts/rules.py",
    "opportunities/stages.py",
    "opportunities/templates.py",
    "stakeholders/health.py",
    "leads/lifecycle.py",
    "leads/scoring.py",
    "territories/rules.py",
    "quotes/pricing.py",
    "approvals/policy.py",
    "metrics/periods.py",
)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_domain_services_know_nothing_of_http() -> None:
    layers = [
        *APP.glob("*/service.py"),
        *APP.glob("*/repository.py"),
        APP / "core" / "errors.py",
        APP / "core" / "tenancy.py",
    ]
    assert layers
    for path in layers:
        web = {n for n in _imports(path) if n.split(".")[0] in WEB_PACKAGES}
        assert not web, f"{path.relative_to(APP)} imports {web}"


def test_pure_rule_modules_import_only_the_standard_library() -> None:
    import sys

    for relative in PURE_RULE_MODULES:
        for name in _imports(APP / relative):
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "__future__", (relative, name)


def test_services_never_commit() -> None:
    for path in [*APP.glob("*/service.py"), *APP.glob("*/repository.py")]:
        assert ".commit(" not in path.read_text(), path.relative_to(APP)


async def test_operations_are_registered_flat_on_the_app(app: FastAPI) -> None:
    """Every /v1 operation is a route of the app's own router: FastAPI matches requests
    through nested (included) routers far more slowly (bench/README.md). Each domain
    router's operations are all there, with their route class and operation id."""
    assert not [r for r in app.router.routes if type(r).__name__ == "_IncludedRouter"]
    registered = {
        (route.path, route.operation_id, type(route))
        for route in app.router.routes
        if isinstance(route, APIRoute)
    }
    declared = {
        (PREFIX + route.path, route.operation_id, type(route))
        for router in DOMAIN_ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
    }
    assert declared and declared <= registered
