"""Storage implementations of the `bot.ports` Store roles; `open_store` picks one by URL."""

from __future__ import annotations

from bot.ports import Store


async def open_store(database_url: str) -> Store:
    """The store for `DATABASE_URL`: the scheme picks the module."""
    scheme = database_url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        from storage.sqlite import open_store as open_sqlite

        return await open_sqlite(database_url)
    raise ValueError(f"DATABASE_URL: unknown scheme {scheme[:20]!r} (use sqlite:///path)")
