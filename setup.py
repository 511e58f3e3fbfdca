"""The one build step pyproject.toml cannot say: compile the gettext catalogs.

The translations are committed as sources (`bot/locales/<lang>/LC_MESSAGES/eachsense.po`);
the `.mo` files Python's `gettext` loads are build output, never committed. This `build_py`
compiles them with Babel (a build requirement): into the wheel for `pip install .` (the
Dockerfile), into the source tree for `pip install -e .` (`make run`, `make test`). A
catalog Babel finds broken (a placeholder that differs from the English one) fails the build.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
LOCALES = Path("bot") / "locales"


def compile_catalogs(source: Path, target: Path) -> list[str]:
    """Compile every `<lang>/LC_MESSAGES/*.po` under `source` into the same place under
    `target`; the `.mo` paths written."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    written: list[str] = []
    for po in sorted(source.glob("*/LC_MESSAGES/*.po")):
        relative = po.relative_to(source)
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=relative.parts[0], domain=po.stem)
        problems = [
            f"{po}:{message.lineno}: {error}"
            for message, errors in catalog.check()
            for error in errors
        ]
        if problems:
            raise SystemExit("broken translation catalog:\n" + "\n".join(problems))
        mo = target / relative.with_suffix(".mo")
        mo.parent.mkdir(parents=True, exist_ok=True)
        with mo.open("wb") as handle:
            write_mo(handle, catalog, use_fuzzy=False)
        written.append(str(mo))
    return written


class BuildPyWithCatalogs(build_py):
    """`build_py`, then the catalogs: next to their sources for an editable install (which
    imports the source tree), else into the build directory the wheel is made from."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            compile_catalogs(HERE / LOCALES, HERE / LOCALES)
            self._catalogs: list[str] = []
        else:
            self._catalogs = compile_catalogs(HERE / LOCALES, Path(self.build_lib) / LOCALES)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *getattr(self, "_catalogs", [])]


setup(cmdclass={"build_py": BuildPyWithCatalogs})
