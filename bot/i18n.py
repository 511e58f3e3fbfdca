"""The bot's sentences in the person's language: gettext catalogs, one language per payload.

The source text is English. `bot/locales/<lang>/LC_MESSAGES/eachsense.po` holds each other
language's translations (`make messages` extracts the sentences from the code into
`bot/locales/eachsense.pot` and merges them into every `.po`); the build compiles them into
the `.mo` files loaded here with Python's `gettext` (`setup.py`), so nothing is translated by
hand-rolled dictionaries and a missing translation is simply the English sentence.

Which language: a context variable, set once per inbound payload by the command flow
(`Commands.handle`) from the payload's `locale` (Discord's interaction locale, Slack's user
locale, the shell's environment). asyncio copies the context into every task created while
it is set, so everything a payload causes, its turn, the renderer's status lines and footer,
its errors, the files posted, speaks that person's language without passing it around.

Marking sentences (Babel extracts these keywords):
- `_("...")` where a sentence is produced; placeholders are `{name}`, filled with `.format`
  after translation (never translate an f-string: its text is not in any catalog);
- `ngettext("{count} file", "{count} files", n)` where the words depend on a number;
- `N_("...")` for a module-level constant: marked for extraction, translated with `_()`
  where it is used (a constant is built before any payload has a language);
- Discord's `locale_str("...")` for the slash commands' descriptions (adapters).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

DOMAIN = "eachsense"
LOCALES = Path(__file__).resolve().parent / "locales"
DEFAULT = "en"
# English is the source text; every other language has a catalog under LOCALES.
LANGUAGES = ("en", "fr", "ja")

_language: contextvars.ContextVar[str] = contextvars.ContextVar(
    "eachsense_language", default=DEFAULT
)


def supported(tag: str | None) -> str | None:
    """The supported language a locale tag names, or None: `fr`, `fr-FR` and `fr_CA.UTF-8`
    are `fr`, `ja-JP` is `ja`, `en-GB` is `en`; `de`, `C`, '' and None are None."""
    if not tag:
        return None
    primary = tag.strip().split(".")[0].split("@")[0].replace("_", "-").split("-")[0].lower()
    return primary if primary in LANGUAGES else None


def language_of(tag: str | None) -> str:
    """The language to speak to someone whose locale is `tag`: English unless supported."""
    return supported(tag) or DEFAULT


def current() -> str:
    """The language sentences are produced in right now (this task's context)."""
    return _language.get()


@contextlib.contextmanager
def using(tag: str | None) -> Iterator[str]:
    """Produce sentences in `tag`'s language inside the block, and in every task created
    there; the previous language is back afterwards."""
    token = _language.set(language_of(tag))
    try:
        yield _language.get()
    finally:
        _language.reset(token)


def set_language(tag: str | None) -> str:
    """Set the language for the rest of this context (a process's default, at start-up)."""
    _language.set(language_of(tag))
    return _language.get()


@functools.cache
def catalog(language: str) -> gettext.NullTranslations:
    """The compiled catalog of `language` (loaded once); English has none."""
    return load(language, LOCALES)


def load(language: str, localedir: Path) -> gettext.NullTranslations:
    """`language`'s compiled catalog in `localedir`. One that was not compiled (a checkout
    used without installing) means English, with a warning; so does a sentence it lacks."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    try:
        return gettext.translation(DOMAIN, localedir, languages=[language])
    except OSError:
        log.warning(
            "no compiled %r catalog in %s (the build compiles them): using English",
            language,
            localedir,
        )
        return gettext.NullTranslations()


def _(message: str) -> str:
    """`message` in the current language (English when it has no translation)."""
    return catalog(_language.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of a sentence that fits `n`, in the current language."""
    return catalog(_language.get()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark a constant for extraction; it is translated with `_()` where it is used."""
    return message


def translation(message: str, language: str) -> str | None:
    """`message` in `language`, or None when that language has no translation for it
    (for a platform that takes a sentence per language, like Discord's descriptions)."""
    if language_of(language) != language or language == DEFAULT:
        return None
    translated = catalog(language).gettext(message)
    return translated if translated != message else None
