"""The core's services, bundled: what adapters are handed and what the root builds.

Adapters see the core through this: the command flow to hand inbound payloads to, the
process's HTTP session to share, the settings. It names no platform and no store module;
`bot.app` (the composition root) builds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from bot.commands import Commands
from bot.config import Settings
from bot.conversations import Conversations
from bot.eachsense import EachSenseClient
from bot.jobs import Jobs
from bot.media import MediaFetcher
from bot.metrics import Metrics
from bot.ports import Store
from bot.replicas import Coordinator
from bot.shared_budgets import SharedTokens
from bot.tasks import BackgroundTasks


@dataclass
class Core:
    settings: Settings
    session: aiohttp.ClientSession
    store: Store
    agent: EachSenseClient
    media: MediaFetcher
    conversations: Conversations
    jobs: Jobs
    commands: Commands
    metrics: Metrics
    coordinator: Coordinator
    background: BackgroundTasks  # the replica's chores (heartbeat, sweeps), cancelled at close
    # platform budgets drawn from the store, shared by the replicas (None: one process)
    shared_tokens: SharedTokens | None = None
