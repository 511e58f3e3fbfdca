"""The catalogs against the code: every sentence the code marks is translated in every
language, with the same placeholders, and the compiled catalogs load and say what their
sources say. Babel extracts the sentences exactly as `make messages` does (`babel.cfg`), and
an AST walk checks that Babel saw every marked sentence (one inside an f-string it would not).
"""

from __future__ import annotations

import ast
import gettext
import re
import string
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from pydantic import ValidationError

from adapters.shell import status_key, thinking_tail
from bot import i18n
from bot.config import Settings
from bot.i18n import DOMAIN, LANGUAGES, LOCALES, _, language_of, supported, translation, using
from bot.render import THINKING, files_posted

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {**DEFAULT_KEYWORDS, "locale_str": None}  # as `make messages`: -k locale_str
MARKERS = {"_", "N_", "ngettext", "locale_str"}
TRANSLATED = [language for language in LANGUAGES if language != i18n.DEFAULT]

Msgid = str | tuple[str, ...]


def extracted() -> dict[Msgid, list[str]]:
    """Every marked sentence in the code, as Babel extracts it, with where it is used."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found: dict[Msgid, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        ROOT, method_map, options_map, keywords=KEYWORDS
    ):
        msgid = message if isinstance(message, str) else tuple(message)
        found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


def sources() -> list[Path]:
    return sorted([*(ROOT / "bot").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")])


def marked_calls() -> list[tuple[Path, ast.Call]]:
    """Every call of a marker in the code (f-strings included: the AST sees inside them)."""
    calls = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name in MARKERS:
                    calls.append((path, node))
    return calls


def source_catalog(language: str) -> Catalog:
    path = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=DOMAIN)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def forms(value: str | tuple[str, ...] | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


# --- the catalogs against the code ---------------------------------------------------------


def test_the_code_marks_sentences_and_babel_finds_them() -> None:
    found = extracted()
    assert len(found) > 100, "the extraction should see the bot's sentences"
    assert "💭 Thinking…" in found and ("{count} file", "{count} files") in found
    assert "Ask each::sense; the answer opens a thread" in found  # a Discord `locale_str`


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_sentence_in_the_code_is_translated(language: str) -> None:
    """A sentence marked in the code that a catalog lacks (or leaves empty) fails here:
    run `make messages` and translate what it added."""
    catalog = source_catalog(language)
    missing = []
    for msgid, where in sorted(extracted().items(), key=str):
        message = catalog.get(msgid if isinstance(msgid, str) else msgid[0])
        strings = forms(message.string) if message is not None else []
        complete = message is not None and not message.fuzzy and all(s.strip() for s in strings)
        if isinstance(msgid, tuple) and complete:
            complete = len(strings) == catalog.num_plurals
        if not complete:
            missing.append(f"{where[0]}: {msgid!r}")
    assert not missing, f"{language} lacks {len(missing)} translations:\n" + "\n".join(missing)


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_the_placeholders(language: str) -> None:
    """`.format(name=...)` after translation: a translation may not add or rename one."""
    wrong = []
    for message in source_catalog(language):
        if not message.id:
            continue
        ids = forms(message.id)
        allowed = set().union(*(placeholders(i) for i in ids))
        for text in forms(message.string):
            names = placeholders(text)
            if names - allowed or (len(ids) == 1 and names != allowed):
                wrong.append(f"{ids[0]!r}: {text!r}")
            text.format(**dict.fromkeys(names, "x"))  # no stray brace either
    assert not wrong, "\n".join(wrong)


def test_babel_sees_every_marked_sentence() -> None:
    """The AST's literal sentences in marker calls, f-strings included, are all extracted."""
    found = extracted()
    seen = {msgid if isinstance(msgid, str) else msgid[0] for msgid in found}
    unseen = [
        f"{path.relative_to(ROOT)}:{call.lineno}: {call.args[0].value!r}"
        for path, call in marked_calls()
        if call.args
        and isinstance(call.args[0], ast.Constant)
        and isinstance(call.args[0].value, str)
        and call.args[0].value not in seen
    ]
    assert not unseen, "Babel does not extract these (inside an f-string?):\n" + "\n".join(unseen)


def test_no_sentence_is_translated_after_formatting() -> None:
    """`_(f"...")` or `_("a" + b)` looks a formatted text up, which no catalog holds."""
    bad = [
        f"{path.relative_to(ROOT)}:{call.lineno}"
        for path, call in marked_calls()
        for arg in call.args[:2]
        if isinstance(arg, ast.JoinedStr | ast.BinOp)
    ]
    assert not bad, "translate the template, then format it: " + ", ".join(bad)


# --- the compiled catalogs -------------------------------------------------------------


def test_every_catalog_is_a_known_language() -> None:
    on_disk = {p.parent.parent.name for p in LOCALES.glob(f"*/LC_MESSAGES/{DOMAIN}.po")}
    assert on_disk == set(TRANSLATED), "add the language to bot.i18n.LANGUAGES (or its .po)"
    assert (LOCALES / f"{DOMAIN}.pot").is_file()


@pytest.mark.parametrize("language", TRANSLATED)
def test_the_compiled_catalogs_load_and_match_their_sources(language: str) -> None:
    """The build compiles each .po (`setup.py`, `make catalogs`); gettext loads the result."""
    loaded = gettext.translation(DOMAIN, LOCALES, languages=[language])
    assert isinstance(loaded, gettext.GNUTranslations)
    assert loaded.info()["language"] == language
    assert loaded.gettext(THINKING) != THINKING
    mo = LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.mo"
    with mo.open("rb") as handle:
        compiled = {tuple(forms(m.id)): tuple(forms(m.string)) for m in read_mo(handle) if m.id}
    sources = {
        tuple(forms(m.id)): tuple(forms(m.string))
        for m in source_catalog(language)
        if m.id and not m.fuzzy
    }
    assert compiled == sources, f"{mo} is stale: run `make catalogs` (or reinstall)"


def test_a_sentence_a_catalog_lacks_is_english(tmp_path: Path) -> None:
    """A catalog with a sentence missing (a new one not yet translated) says it in English;
    the Discord translator then gives no localization, so Discord shows the English one."""
    full = source_catalog("fr")
    partial = Catalog(locale="fr", domain=DOMAIN)
    for message in full:
        if message.id and message.id != "✅ Done":
            partial.add(message.id, message.string)
    out = tmp_path / "fr" / "LC_MESSAGES"
    out.mkdir(parents=True)
    with (out / f"{DOMAIN}.mo").open("wb") as handle:
        write_mo(handle, partial)
    french = i18n.load("fr", tmp_path)
    assert french.gettext("✅ Done") == "✅ Done"
    assert french.gettext(THINKING) == "💭 Réflexion…"
    with using("fr"):
        assert _("a sentence no catalog has") == "a sentence no catalog has"
    assert translation("a sentence no catalog has", "fr") is None
    assert translation(THINKING, "fr") == "💭 Réflexion…"
    assert translation(THINKING, "en") is None and translation(THINKING, "de") is None


# --- which language ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("fr", "fr"),
        ("fr-FR", "fr"),
        ("fr_CA.UTF-8", "fr"),
        ("FR", "fr"),
        ("ja", "ja"),
        ("ja-JP", "ja"),
        ("ja_JP.eucJP", "ja"),
        ("en-US", "en"),
        ("en-GB", "en"),
        ("de", "en"),
        ("es-419", "en"),
        ("C.UTF-8", "en"),
        ("POSIX", "en"),
        ("", "en"),
        (None, "en"),
    ],
)
def test_a_locale_tag_maps_to_a_supported_language_else_english(
    tag: str | None, language: str
) -> None:
    assert language_of(tag) == language


def test_using_sets_the_language_for_the_block_and_restores_it() -> None:
    before = i18n.current()
    with using("ja-JP") as language:
        assert language == "ja" and _(THINKING) == "💭 考えています…"
        with using("de"):
            assert _(THINKING) == THINKING
        assert i18n.current() == "ja"
    assert i18n.current() == before


def test_bot_language_setting() -> None:
    def settings(value: str) -> Settings:
        return Settings(_env_file=None, bot_language=value)  # type: ignore[call-arg]

    assert settings("fr-FR").bot_language == "fr"
    assert settings("ja").bot_language == "ja"
    assert settings("").bot_language is None
    with pytest.raises(ValidationError, match="must be one of en, fr, ja"):
        settings("de")
    assert supported("de") is None


# --- what the shell reads back from the core's status lines -------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_shell_reads_translated_status_lines(language: str) -> None:
    with using(language):
        thinking = _(THINKING)
        posted = files_posted(2)
        assert status_key(f"{thinking} · 12s · {posted}") == thinking
        assert thinking_tail(f"{thinking} deep thoughts · {files_posted(1)}") == "deep thoughts"
        assert re.match(r"\S+ ", thinking), "the icon stays first: the shell shows it alone"
