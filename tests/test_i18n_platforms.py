"""Each person's language, end to end through the real libraries: discord.py against the fake
Discord (an interaction's `locale`, the synced commands' `description_localizations`),
slack-bolt against the fake Slack (`users.info` with `include_locale`, delivered the way
Slack delivers), and the shell (LANG, BOT_LANGUAGE). The simulator plays each::sense."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.discord.client import DiscordBot
from adapters.shell import Shell
from adapters.slack.app import SlackBot
from bot.app import Core, build_core, close_core, simulated
from bot.config import Settings
from bot.http import HttpServer
from bot.i18n import translation
from simulator import Simulator
from tests.conftest import make_settings
from tests.discord_bot import running_bot
from tests.fakes.discord import EPHEMERAL, FakeDiscord, FakeInteraction
from tests.fakes.slack import FakeMessage, FakeSlack

SECRET = "test-signing-secret"


# --- Discord -------------------------------------------------------------------------------


@dataclass
class DiscordEnv:
    fake: FakeDiscord
    sim: Simulator
    core: Core
    bot: DiscordBot

    def bot_messages(self, channel_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.fake.channel_messages(channel_id)
            if m["author"]["id"] == self.fake.bot_id
        ]

    async def refusal(self, inter: FakeInteraction) -> dict[str, Any]:
        await self.fake.wait_for(lambda: inter.callbacks, what="the interaction's answer")
        return dict(inter.callbacks[0]["data"])

    async def thread_of(self, inter: FakeInteraction, pointer: str) -> str:
        """The thread a command opened, once its deferred response points there."""

        def pointed() -> str | None:
            original = inter.original_id and self.fake.messages[inter.original_id]["content"]
            return original if original and original.startswith(pointer) else None

        content = await self.fake.wait_for(pointed, what="the response pointing at the thread")
        return str(content).split("<#")[1].rstrip(">")

    async def answers(self, thread_id: str, footer: str, *, count: int = 1) -> list[Any]:
        def done() -> list[dict[str, Any]] | None:
            messages = self.bot_messages(thread_id)
            finals = [m for m in messages if footer in m["content"]]
            return messages if len(finals) >= count else None

        return list(await self.fake.wait_for(done, what=f"{count} answer(s) ending {footer!r}"))


@pytest.fixture
async def discord_env(tmp_path: Path) -> AsyncIterator[DiscordEnv]:
    async with FakeDiscord() as fake, Simulator(speed=1000) as sim:
        settings = make_settings(database_url=f"sqlite:///{tmp_path}/bot.db")
        async with running_bot(fake, sim, settings) as (core, bot):
            yield DiscordEnv(fake, sim, core, bot)


def labels(message: dict[str, Any]) -> list[str]:
    return [c["label"] for row in message.get("components") or [] for c in row["components"]]


async def test_a_french_discord_client_gets_french_refusals_status_and_footer(
    discord_env: DiscordEnv,
) -> None:
    env, fake = discord_env, discord_env.fake
    # a refusal from the core (eco is for admins), answered in the interaction itself
    refused = await env.refusal(await fake.slash("sense-eco", {"action": "on"}, locale="fr"))
    assert refused["flags"] & EPHEMERAL
    assert refused["content"] == (
        "Seuls les admins peuvent changer le mode éco ici (les personnes ayant la permission "
        "Gérer les salons, ou les identifiants de BOT_ADMINS). `/sense-eco status` fonctionne "
        "pour tout le monde."
    )
    # a refusal before anything opens (the precheck), in the same language
    empty = await env.refusal(await fake.slash("sense", {"prompt": "  "}, locale="fr"))
    assert empty["content"] == (
        "⚠️ Veuillez écrire un prompt, par exemple `/sense une ville cyberpunk`."
    )

    inter = await fake.slash("sense", {"prompt": "just text"}, locale="fr")
    thread_id = await env.thread_of(inter, "Je réponds dans <#")
    assert fake.messages[thread_id]["content"] == (
        f"<@{fake.user_id}> a demandé : just text · mode max"
    )
    (answer,) = await env.answers(thread_id, "✅ Terminé · mode max")
    # the status line the renderer posted first, from the turn's own task
    first = fake.calls_to("POST", rf"/channels/{thread_id}/messages$")[0].json
    assert first["content"].endswith("💭 Réflexion…")
    assert labels(first) == ["Arrêter"]
    assert labels(answer) == ["Régénérer"]

    # a message in the thread carries no locale: its author's last interaction's is used
    await fake.say(thread_id, "and more, just text")
    await env.answers(thread_id, "✅ Terminé · mode max", count=2)
    assert len(env.sim.requests) == 2


async def test_a_discord_client_without_a_catalog_gets_english(discord_env: DiscordEnv) -> None:
    env, fake = discord_env, discord_env.fake
    refused = await env.refusal(await fake.slash("sense-eco", {"action": "on"}, locale="de"))
    assert refused["content"].startswith(
        "Only admins can change eco mode here (people with Manage Channels"
    )
    inter = await fake.slash("sense", {"prompt": "just text"}, locale="de")
    thread_id = await env.thread_of(inter, "Answering in <#")
    assert fake.messages[thread_id]["content"] == f"<@{fake.user_id}> asked: just text · max mode"
    (answer,) = await env.answers(thread_id, "✅ Done · max mode")
    assert labels(answer) == ["Regenerate"]


async def test_synced_commands_carry_french_and_japanese_descriptions(
    discord_env: DiscordEnv,
) -> None:
    env, fake = discord_env, discord_env.fake
    await env.bot.sync_commands(int(fake.guild_id))
    synced = {c["name"]: c for c in fake.commands[fake.guild_id] if c.get("type", 1) == 1}
    assert set(synced) == {
        "sense",
        "sense-eco",
        "sense-settings",
        "sense-predict",
        "sense-workflow",
        "sense-usage",
        "sense-admin",
    }
    for command in synced.values():
        described = [command, *command["options"]]
        for item in described:  # the command and each of its options
            localized = item["description_localizations"]
            assert set(localized) == {"fr", "ja"}, item["name"]
            assert localized["fr"] == translation(item["description"], "fr")
            assert localized["ja"] == translation(item["description"], "ja")
    sense = synced["sense"]
    assert sense["description"] == "Ask each::sense; the answer opens a thread"
    assert sense["description_localizations"] == {
        "fr": "Demander à each::sense ; la réponse ouvre un fil",
        "ja": "each::sense に質問します。回答はスレッドで届きます",
    }
    assert "name_localizations" not in sense or not sense["name_localizations"]


# --- Slack ---------------------------------------------------------------------------------


@dataclass
class SlackEnv:
    slack: FakeSlack
    sim: Simulator
    bot: SlackBot

    def root(self, channel: str = "C1", index: int = 0) -> FakeMessage | None:
        top = self.slack.top_level(channel)
        return top[index] if len(top) > index else None

    async def answered(self, root: FakeMessage, footer: str) -> list[FakeMessage]:
        def done() -> list[FakeMessage] | None:
            messages = self.slack.thread(root.channel, root.ts)
            return messages if any(footer in m.all_text for m in messages) else None

        return list(await self.slack.wait_for(done, what=f"an answer ending {footer!r}"))


@pytest.fixture
async def slack_env(tmp_path: Path) -> AsyncIterator[SlackEnv]:
    locales = {"UJA": "ja-JP", "UES": "es-ES"}
    async with Simulator(speed=1000) as sim, FakeSlack(locales=locales) as slack:
        settings: Settings = simulated(
            make_settings(
                slack_bot_token=SecretStr(slack.bot_token),
                slack_signing_secret=SecretStr(SECRET),
                slack_api_url=slack.api_url,
                database_url=f"sqlite:///{tmp_path}/bot.db",
                http_host="127.0.0.1",
                http_port=0,
            ),
            sim,
        )
        core = await build_core(settings)
        http = HttpServer(host="127.0.0.1", port=0)
        bot = SlackBot(settings, core, http)
        try:
            await bot.start()
            await http.start()
            slack.connect_app(f"{http.url}/slack/events", SECRET)
            yield SlackEnv(slack, sim, bot)
        finally:
            await bot.stop()
            await http.stop()
            await close_core(core)


def locale_lookups(slack: FakeSlack, user: str) -> int:
    return sum(
        1
        for call in slack.calls_to("users.info")
        if call.params.get("user") == user and call.params.get("include_locale") == "1"
    )


async def test_a_japanese_slack_user_gets_japanese(slack_env: SlackEnv) -> None:
    env, slack = slack_env, slack_env.slack
    # refused in the ack itself, within Slack's 3 s, in the person's language
    refused = await slack.send_command("/sense", "", user="UJA")
    assert refused.ack is not None
    assert refused.ack.body == "⚠️ プロンプトを書いてください。例: `/sense サイバーパンクな街`。"
    assert not slack.top_level("C1")

    await slack.send_command("/sense", "just text", user="UJA")
    root = await slack.wait_for(env.root, what="the root message")
    assert root.text == "<@UJA> が質問しました: just text · maxモード"
    messages = await env.answered(root, "✅ 完了 · maxモード")
    final = next(m for m in messages if "✅ 完了" in m.all_text)
    assert "再生成" in final.all_text
    assert locale_lookups(slack, "UJA") == 1, "the user's locale is looked up once, then cached"

    # eco: the refusal goes through response_url, in Japanese too
    await slack.send_command("/sense-eco", "on", user="UJA")
    answer = await slack.wait_for(lambda: slack.responses, what="the eco refusal")
    assert answer[0]["text"].startswith("ここでエコモードを変更できるのは管理者だけです")
    assert "ワークスペースの管理者とオーナー" in answer[0]["text"]
    assert locale_lookups(slack, "UJA") == 1


async def test_a_slack_user_in_a_language_without_a_catalog_gets_english(
    slack_env: SlackEnv,
) -> None:
    env, slack = slack_env, slack_env.slack
    await slack.send_command("/sense", "just text", user="UES")
    root = await slack.wait_for(env.root, what="the root message")
    assert root.text == "<@UES> asked: just text · max mode"
    await env.answered(root, "✅ Done · max mode")
    assert locale_lookups(slack, "UES") == 1


# --- the shell -----------------------------------------------------------------------------


async def run_shell(core: Core, lines: str) -> str:
    out = io.StringIO()
    assert await Shell(core, out=out).run(stdin=io.StringIO(lines)) == 0
    return out.getvalue()


async def test_the_shell_speaks_the_language_of_lang(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    out = await run_shell(core, "just text\n/help\n/bogus\n")
    assert "✅ Terminé · mode max" in out
    assert "Commandes :" in out and "afficher cette liste" in out
    assert "Commande inconnue /bogus. Tapez /help pour la liste." in out


async def test_bot_language_is_the_shells_language_over_lang(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANG", "fr_FR.UTF-8")
    core = await build_core(simulated(make_settings(bot_language="ja"), sim))
    try:
        out = await run_shell(core, "just text\n")
    finally:
        await close_core(core)
    assert "✅ 完了 · maxモード" in out
