"""The slash commands' descriptions in every language the bot has a catalog for.

discord.py asks its tree's `app_commands.Translator` for each `locale_str` (command and
option descriptions, `commands.py`) in each Discord locale when the commands are synced, and
sends the answers as `description_localizations`: Discord then shows a French or Japanese
client the description in its language. The translations are the bot's own gettext catalogs
(`bot.i18n`); a locale without a catalog, or a description its catalog lacks, gets None, so
Discord shows the English one.
"""

from __future__ import annotations

import discord
from discord import app_commands

from bot.i18n import supported, translation


class CatalogTranslator(app_commands.Translator):
    """`bot.i18n`'s catalogs as discord.py's translator (set on the tree before a sync)."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        language = supported(locale.value)
        return translation(string.message, language) if language is not None else None
