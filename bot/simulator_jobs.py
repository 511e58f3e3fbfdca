"""each::api predictions and each::workflows endpoints for the offline simulator.

Filled in by the direct-runs work; `bot.simulator.Simulator` calls `add_routes` when it
builds its application.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


def add_routes(app: web.Application, sim: Any) -> None:
    """Mount prediction/workflow routes on the simulator app. `sim` is the `Simulator`."""
    return None
