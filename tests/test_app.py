"""The composition root as production runs it (`bot.app.serve`): the registered Slack adapter
built from settings, restart notices, webhook routes, `/metrics` and `/readyz`, with the real
slack-bolt against the fake Slack and the simulator as each::sense."""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from adapters.slack.spec import SPEC as SLACK
from bot.app import build_core, close_core, serve
from bot.config import Settings
from bot.http import HttpServer
from bot.models import ThreadKey, TurnRecord, TurnStatus
from bot.ports import Platform
from simulator import Simulator
from tests.fakes.slack import FakeSlack
from tests.test_slack_adapter import TEAM, Rig, finished, settings_for, until

__all__ = ["settings_for"]  # the fixture, used below


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_serve_wires_platforms_notices_webhooks_metrics_and_readiness(
    settings_for: Callable[..., Settings],
) -> None:
    async with Simulator(speed=1000) as sim, FakeSlack() as slack:
        settings = settings_for(slack, sim)
        core = await build_core(settings)
        key = ThreadKey("slack", TEAM, "C1", "1700000000.000100")
        await core.store.begin_turn(TurnRecord("cut", key, "U1", "a fox", TurnStatus.RUNNING, 1.0))
        http = HttpServer(host="127.0.0.1", port=0)
        started: list[Platform] = []
        try:
            await serve(core, http, [SLACK], started)
            [bot] = started
            rig = Rig(slack, sim, bot, http, core.session)  # type: ignore[arg-type]
            # the turn a crash cut off was reported in its thread
            assert "restarted while answering" in slack.thread("C1", key.thread)[0].all_text
            await rig.command("/sense", "just text")
            root = (await until(lambda: slack.top_level("C1"), what="root"))[0].ts
            await until(lambda: finished(slack, "C1", root), what="the answer")
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{http.url}/webhooks/eachlabs/j123", json={}) as r:
                    assert r.status == 401  # the webhook route is mounted, forgers refused
                async with session.get(f"{http.url}/readyz") as r:
                    assert r.status == 503  # not ready until `run` says so
                http.ready = True
                async with session.get(f"{http.url}/readyz") as r:
                    assert r.status == 200, await r.text()
                async with session.get(f"{http.url}/metrics") as r:
                    found = samples(await r.text())
            assert found[("eachsense_turns_total", (("outcome", "done"),))] == 1
            calls = (
                "eachsense_platform_calls_total",
                (("method", "chat.postMessage"), ("platform", "slack")),
            )
            assert found[calls] >= 2
            assert found[("eachsense_final_edit_seconds_count", ())] == 1
            assert found[("eachsense_running_turns", ())] == 0
        finally:
            for platform in started:
                await platform.stop()
            await http.stop()
            await close_core(core)
