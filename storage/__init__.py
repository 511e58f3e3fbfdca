"""Storage implementations of `bot.ports.Store`, picked by the `DATABASE_URL` scheme.

`sqlite:` is the embedded default (one process, or a few sharing a local file);
`postgresql:` / `postgres:` is for several replicas. Each engine's module is imported only
when its scheme is used, so a SQLite bot never loads asyncpg.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.ports import Store

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


async def open_store(database_url: str) -> Store:
    """Open (creating and migrating if needed) the store behind `database_url`."""
    scheme = url_scheme(database_url)
    if scheme == "sqlite":
        from storage import sqlite

        return await sqlite.open_store(database_url)
    if scheme in ("postgresql", "postgres"):
        from storage.postgres import PostgresStore

        return await PostgresStore.open(database_url)
    # Only the scheme goes into the message: the rest of a URL may hold a password.
    shown = f"{scheme}:" if scheme else "a value without a scheme"
    raise ValueError(
        f"DATABASE_URL must start with sqlite://, postgresql:// or postgres://, not {shown}"
    )


def url_scheme(database_url: str) -> str:
    """The URL's scheme in lower case, or "" if it has none."""
    match = _SCHEME.match(database_url)
    return match.group(1).lower() if match else ""
