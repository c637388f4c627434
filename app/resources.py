"""Files the server ships beside its code: the dashboard and Swagger UI (`static/`) and
Hypercorn's settings (`hypercorn.toml`).

Installed from a wheel they are package data inside `app/` (setup.py puts them there), found
with importlib.resources wherever the package is and whatever the current folder. In a
source checkout (the editable install of `make install`) the package is the repository's
`app/` folder, and they are where the repository keeps them, at its top."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource(name: str) -> Path:
    """The file or folder `name` (`static`, `hypercorn.toml`) as a path on disk: Quart
    serves static files from a folder, and Hypercorn reads its TOML from a file. A wheel
    installs as plain files, so the resource is one already (no temporary extraction)."""
    packaged = files("app") / name
    if packaged.is_file() or packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[1] / name  # only ever a source checkout
    if not checkout.exists():
        raise FileNotFoundError(f"{name} is neither in the installed package nor in a source checkout")
    return checkout


POSTGRES_SCHEMES = ("postgres://", "postgresql://", "asyncpg://")


def require_database_driver(database_url: str) -> None:
    """PostgreSQL's driver (asyncpg) is the optional `postgres` extra, which SQLite (the
    default) does not need: a PostgreSQL DATABASE_URL without it stops with one line
    saying how to install it, not an ImportError from deep inside Tortoise."""
    if not database_url.startswith(POSTGRES_SCHEMES):
        return
    from importlib.util import find_spec

    if find_spec("asyncpg") is None:
        from app.config import ConfigError

        raise ConfigError("DATABASE_URL is PostgreSQL but its driver (asyncpg) is not installed: "
                          "pip install '.[postgres]' (or agent-runtime-server[postgres])")
