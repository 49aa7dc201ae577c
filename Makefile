# The two commands a newcomer needs:
#   make demo   installs NC Connect and starts the broker (embedded SQLite, demo config) and the demo téléservice
#   make test   installs NC Connect with its test tools and runs the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config

.PHONY: install demo test bench clean

$(BIN)/nc-connect: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/nc-connect

demo: install
	scripts/demo

test: install
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf var $(VENV) *.egg-info
