#!/usr/bin/env python3
"""The commands, needing nothing but Python 3.11+:

    python3 dev.py serve   # install, start embedded PostgreSQL, migrate, demo data, serve :8000
    python3 dev.py test    # install, lint (ruff), type-check (mypy), run the whole test suite
    python3 dev.py fuzz    # install, contract-fuzz every operation far harder than `test` does

All create ./.venv on first use and reinstall only when pyproject.toml or constraints.txt
changes. Extra arguments go to `dealbase serve` or to pytest respectively.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".dealbase-installed"
FUZZ_EXAMPLES = 100


def ensure_installed() -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"dealbase needs Python 3.11+, this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("Creating .venv …", file=sys.stderr)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    ).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    print("Installing dealbase and its dependencies into .venv …", file=sys.stderr)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    # Within the versions the suite last passed with (constraints.txt says why).
    subprocess.run(
        [*pip, "install", "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[dev]"], check=True
    )
    STAMP.write_text(wanted)


def run(*command: str, env: dict[str, str] | None = None) -> int:
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def serve(args: list[str]) -> int:
    return run(str(BIN / "dealbase"), "serve", *args)


def test(args: list[str]) -> int:
    checks = [
        (str(BIN / "ruff"), "check", "."),
        (str(BIN / "ruff"), "format", "--check", "."),
        (str(BIN / "mypy"),),
    ]
    for command in checks:
        if code := run(*command):
            print(f"failed: {' '.join(command)}", file=sys.stderr)
            return code
    return run(str(BIN / "pytest"), *args)


def fuzz(args: list[str]) -> int:
    """tests/contract with FUZZ_EXAMPLES generated requests per operation (the test suite
    sends a few) and a new random seed each run; DEALBASE_FUZZ_EXAMPLES / _SEED override."""
    env = {**os.environ}
    env.setdefault("DEALBASE_FUZZ_EXAMPLES", str(FUZZ_EXAMPLES))
    return run(str(BIN / "pytest"), "tests/contract", *args, env=env)


def main() -> int:
    commands = {"serve": serve, "test": test, "fuzz": fuzz}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    ensure_installed()
    return commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
