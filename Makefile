# The two commands a newcomer needs:
#   make demo   installs NC Connect and starts the broker (embedded SQLite, demo config) and the demo téléservice
#   make test   installs NC Connect with its test tools and runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config

# The State design system (DSFR) and axe-core, pinned in frontend/package-lock.json, from the npm registry;
# the DSFR files the broker serves are copied to broker/static/dsfr (not committed).
NODE_MODULES := frontend/node_modules/.package-lock.json
DSFR := broker/static/dsfr/VERSION
TRANSLATIONS := broker/translations

.PHONY: install demo test bench clean i18n

$(BIN)/nc-connect: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(NODE_MODULES): frontend/package.json frontend/package-lock.json
	@command -v npm >/dev/null || { echo "npm is required (Node.js 20): the citizen pages use the State design system from the npm registry" >&2; exit 1; }
	cd frontend && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(DSFR): $(NODE_MODULES) scripts/copy_dsfr.py
	python3 scripts/copy_dsfr.py

install: $(BIN)/nc-connect $(DSFR)

# Extract the citizen-facing messages, update the English catalogue, compile it (the .mo is committed:
# a test fails when it is not the compilation of the .po, or when a message has no translation).
i18n: $(BIN)/nc-connect
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k lazy_gettext --add-location=file --sort-output \
	  --project "NC Connect" --copyright-holder "Gouvernement de la Nouvelle-Calédonie" -o $(TRANSLATIONS)/messages.pot .
	$(BIN)/pybabel update -i $(TRANSLATIONS)/messages.pot -d $(TRANSLATIONS) --no-fuzzy-matching --width 100
	$(BIN)/pybabel compile -d $(TRANSLATIONS) --statistics

demo: install
	scripts/demo

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf var $(VENV) *.egg-info frontend/node_modules broker/static/dsfr
