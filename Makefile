# Every target builds .venv itself, so a fresh clone needs nothing but Python 3.11+.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# gettext catalogs: the .po sources are committed, the .mo files are build output. The
# install compiles them (setup.py); these rules recompile a .po edited since.
LOCALES := bot/locales
POT := $(LOCALES)/eachsense.pot
CATALOGS := $(patsubst %.po,%.mo,$(wildcard $(LOCALES)/*/LC_MESSAGES/eachsense.po))

.PHONY: run test bench lint clean messages catalogs

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

%.mo: %.po $(STAMP)
	$(BIN)/pybabel -q compile -D eachsense -i $< -o $@

catalogs: $(CATALOGS)

# After changing sentences in the code: extract them into the .pot and merge it into every
# language's .po (then translate what is new or marked fuzzy there).
messages: $(STAMP)
	$(BIN)/pybabel -q extract -F babel.cfg -k locale_str -c TRANSLATORS: --sort-by-file \
		--project eachsense-bot --msgid-bugs-address "" -o $(POT) .
	$(BIN)/pybabel -q update -D eachsense -i $(POT) -d $(LOCALES) --ignore-obsolete

run: $(STAMP) catalogs
	$(BIN)/eachsense-bot run

test: $(STAMP) catalogs
	$(BIN)/python -m pytest -q

bench: $(STAMP) catalogs
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy bot adapters storage

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
