"""Platform adapters: each translates one platform to the core and back.

`REGISTRY` lists them for the composition root (`bot.app`): a new platform is a package
with a `spec.py` like the others and one line here.
"""

from __future__ import annotations

from adapters.discord.spec import SPEC as DISCORD
from adapters.slack.spec import SPEC as SLACK
from bot.ports import AdapterSpec

REGISTRY: tuple[AdapterSpec, ...] = (SLACK, DISCORD)
